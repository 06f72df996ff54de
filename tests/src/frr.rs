//! FRR's vrrpd as a VRRP peer in a namespace: zebra and vrrpd started
//! with `-N <namespace>` (their own run directory `/var/run/frr/<ns>`, so
//! nothing touches the host's FRR or a Debian frr.service), configured
//! through `vtysh -N`.
//!
//! FRR needs the macvlans itself (docs/user/vrrp.rst): mode bridge (in
//! private mode its Backup, whose macvlan is in protodown, would not hear
//! adverts from the virtual MAC), the virtual MAC, `addrgenmode random`
//! (an EUI-64 link-local from the virtual MAC would be the same on every
//! node), and the VIPs on them; vrrpd only sets them protodown in Backup.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::Netns;
use crate::netns::run;
use crate::process::{Process, wait_until};

/// zebra and vrrpd running in a namespace; stopped and their run
/// directory removed on drop.
pub struct Frr {
    ns: String,
    // Dropped (stopped) before the directory goes.
    vrrpd: Option<Process>,
    zebra: Option<Process>,
    dir: PathBuf,
}

impl Frr {
    /// Start zebra, then vrrpd, in `ns`; returns once vtysh reaches vrrpd.
    pub fn start(ns: &Netns) -> Result<Frr> {
        let dir = PathBuf::from("/var/run/frr").join(ns.name());
        std::fs::create_dir_all(&dir)?;
        // The daemons drop to user frr and write their sockets there.
        let _ = run(Command::new("chown").args(["frr:frr"]).arg(&dir));
        let echo = std::env::var_os("VRRP_TEST_ECHO").is_some();
        let spawn = |daemon: &str| {
            let mut c = Command::new("ip");
            c.args([
                "netns",
                "exec",
                ns.name(),
                &format!("/usr/lib/frr/{daemon}"),
                "-N",
                ns.name(),
                "-P",
                "0",
            ]);
            c.args(["--log", "stdout"]);
            Process::spawn(daemon, &mut c, echo)
        };
        let mut frr = Frr { ns: ns.name().to_owned(), vrrpd: None, zebra: None, dir };
        frr.zebra = Some(spawn("zebra")?);
        wait_until(Duration::from_secs(10), || Ok(frr.dir.join("zserv.api").exists()))
            .context("zebra's socket")?;
        frr.vrrpd = Some(spawn("vrrpd")?);
        // vrrpd takes a moment to open its vty socket.
        wait_until(Duration::from_secs(10), || Ok(frr.vtysh(&["show vrrp"]).is_ok()))
            .context("vrrpd's vty")?;
        Ok(frr)
    }

    /// Run vtysh commands (each a `-c`) against this namespace's daemons.
    pub fn vtysh(&self, cmds: &[&str]) -> Result<String> {
        let mut c = Command::new("vtysh");
        c.args(["-N", &self.ns]);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        Ok(String::from_utf8_lossy(&run(&mut c)?.stdout).into_owned())
    }

    /// `configure terminal`, `interface IFACE`, then `lines`.
    pub fn configure(&self, iface: &str, lines: &[&str]) -> Result<String> {
        let head = format!("interface {iface}");
        let mut cmds = vec!["configure terminal", head.as_str()];
        cmds.extend_from_slice(lines);
        self.vtysh(&cmds)
    }

    /// `show vrrp VRID json`: the virtual router's state.
    pub fn vrrp(&self, vrid: u8) -> Result<serde_json::Value> {
        let out = self.vtysh(&[&format!("show vrrp {vrid} json")])?;
        let v: serde_json::Value =
            serde_json::from_str(&out).with_context(|| format!("vtysh JSON: {out}"))?;
        Ok(v[0].clone())
    }

    /// The status ("Backup", "Master", ...), transitions and adverts
    /// received of VRID `vrid`'s router of family `fam` ("v4" or "v6").
    pub fn status(&self, vrid: u8, fam: &str) -> Result<(String, u64, u64)> {
        let v = self.vrrp(vrid)?;
        let f = &v[fam];
        Ok((
            f["status"].as_str().unwrap_or("?").to_owned(),
            f["stats"]["transitions"].as_u64().unwrap_or(0),
            f["stats"]["adverRx"].as_u64().unwrap_or(0),
        ))
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.vrrpd.take();
        self.zebra.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A macvlan as FRR wants it for VRID `vrid` of `family` (4 or 6) on
/// `base` in `ns`, named `name`, with `addrs` (CIDR) on it.
pub fn macvlan(ns: &Netns, base: &str, name: &str, family: u8, vrid: u8, addrs: &[&str]) -> Result<()> {
    let mac = format!("00:00:5e:00:{:02x}:{vrid:02x}", if family == 6 { 2 } else { 1 });
    ns.ip(&[
        "link", "add", "link", base, "name", name, "address", &mac, "type", "macvlan", "mode", "bridge",
    ])?;
    ns.ip(&["link", "set", "dev", name, "addrgenmode", "random"])?;
    ns.ip(&["link", "set", name, "up"])?;
    for a in addrs {
        ns.ip(&["addr", "add", a, "dev", name, "nodad"])?;
    }
    Ok(())
}

//! The checks that depend on the running system, made once for both
//! `check-config` and `run`, so the two cannot disagree: script users and
//! programs (keepalived refuses them at load, lib/notify.c and
//! vrrp/vrrp.c check_vrrp_script_security), interfaces, and how many VIPs
//! fit in an advert (vrrp/vrrp.c vrrp_complete_instance).

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use vrrp_common::wire::{Family, Version};

use super::lexer::Loc;
use super::model::{Config, Report};
use crate::health::{runner, user};

/// keepalived's DEFAULT_MTU, used when the interface is not there (yet).
pub const DEFAULT_MTU: u32 = 1500;

/// The count field of an advert is 8 bits wide (RFC 3768 5.3.5, RFC 5798 5.2.5).
pub const MAX_ADDRS: usize = 255;

/// How many addresses fit in one advert on a link of `mtu` bytes, as
/// keepalived computes it: Ethernet + IP + VRRP header (+ the 8-byte v2
/// authentication data) out of the MTU, at most 255.
pub fn max_vips(mtu: u32, family: Family, version: Version) -> usize {
    let (ip_hdr, addr) = match family {
        Family::V4 => (20, 4),
        Family::V6 => (40, 16),
    };
    let auth = if version == Version::V2 && family == Family::V4 { 8 } else { 0 };
    let hdr = 14 + ip_hdr + 8 + auth;
    (mtu as usize).saturating_sub(hdr).checked_div(addr).unwrap_or(0).min(MAX_ADDRS)
}

/// The MTU of interface `name`, if it exists in this network namespace.
pub fn mtu(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: a plain datagram socket, closed below; the ioctl reads
    // `ifr_name` (NUL-terminated, checked above) and writes `ifru_mtu`.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(cname.as_bytes_with_nul()) {
            *d = *s as libc::c_char;
        }
        let rc = libc::ioctl(fd, libc::SIOCGIFMTU, &mut req);
        libc::close(fd);
        (rc == 0).then(|| u32::try_from(req.ifr_ifru.ifru_mtu).unwrap_or(0))
    }
}

fn exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// Where `program` is: as written when it has a '/', else the first
/// match in PATH (as execvp, and keepalived's path search, find it).
fn locate(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).exists().then(|| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Why the command line `cmd` cannot run, if it cannot.
fn program_problem(cmd: &str, security: bool) -> Option<String> {
    let argv = runner::argv(cmd);
    let Some(prog) = argv.first() else {
        return Some("the command line is empty".into());
    };
    let Some(found) = locate(prog) else {
        return Some(format!("`{prog}` not found"));
    };
    match std::fs::metadata(&found) {
        Ok(m) if !m.is_file() => return Some(format!("`{}` is not a file", found.display())),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            return Some(format!("`{}` is not executable", found.display()));
        }
        Ok(_) => {}
        Err(e) => return Some(format!("`{}`: {e}", found.display())),
    }
    if security {
        if let Some(why) = found.to_str().and_then(user::unsafe_reason) {
            return Some(format!("unsafe permissions with enable_script_security: {why}"));
        }
    }
    None
}

/// A warning for each interface of route `rt` that does not exist.
fn missing_route_dev(rt: &super::routes::Route, what: &str, r: &mut Report) {
    let devs = rt.dev.iter().chain(rt.nexthops.iter().filter_map(|n| n.dev.as_ref()));
    for dev in devs.filter(|d| !exists(d)) {
        r.warn(
            &rt.loc,
            format!("{what} {}/{}: `dev {dev}` does not exist (yet)", rt.dst, rt.dst_len),
            "the route cannot be added until the interface appears",
        );
    }
}

/// Check `cfg` against this system; adjust it where keepalived does.
pub fn check(cfg: &mut Config, r: &mut Report) {
    scripts(cfg, r);
    for rt in &cfg.static_routes {
        missing_route_dev(rt, "static route", r);
    }

    // One MTU query per interface, not per instance (each opens a socket:
    // a third of the check's time with 4,000 instances on 16 VLANs).
    let mut mtus: std::collections::HashMap<String, Option<u32>> = std::collections::HashMap::new();
    // Likewise whether an instance's interface exists (if_nametoindex
    // opens a socket too).
    let mut present: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    for i in &mut cfg.instances {
        if !*present.entry(i.interface.clone()).or_insert_with(|| exists(&i.interface)) {
            r.warn(
                &i.loc,
                format!("instance {}: interface `{}` does not exist (yet)", i.name, i.interface),
                "the instance starts in FAULT and leaves it when the interface appears; check the name if it never will",
            );
        }
        for t in &i.track_interface {
            if !exists(&t.name) {
                r.warn(
                    &i.loc,
                    format!("instance {}: tracked interface `{}` does not exist (yet)", i.name, t.name),
                    "it counts as down until it appears",
                );
            }
        }
        for v in i.vips.iter().chain(&i.vips_excluded) {
            if let Some(dev) = v.dev.as_deref().filter(|d| !exists(d)) {
                r.warn(
                    &i.loc,
                    format!(
                        "instance {}: `dev {dev}` of virtual address {} does not exist (yet)",
                        i.name, v.addr
                    ),
                    "the address cannot be added until the interface appears",
                );
            }
        }
        for rt in &i.routes {
            missing_route_dev(rt, &format!("instance {}: virtual route", i.name), r);
        }
        // An advert that cannot carry the VIPs is never sent, and then both
        // nodes become MASTER. keepalived moves the excess to the excluded
        // addresses (added, not advertised) with this message.
        let mtu = mtus.entry(i.interface.clone()).or_insert_with(|| mtu(&i.interface)).unwrap_or(DEFAULT_MTU);
        let max = max_vips(mtu, i.family, i.version);
        if max == 0 {
            r.error(
                &i.loc,
                format!("instance {}: an advert does not fit in the MTU of {} ({mtu})", i.name, i.interface),
                "raise the interface's MTU",
            );
        } else if i.vips.len() > max {
            r.warn(
                &i.loc,
                format!(
                    "({}) Number of VIPs ({}) exceeds maximum/space available in packet (max {max} addresses) - excess moved to eVIPs",
                    i.name,
                    i.vips.len()
                ),
                format!(
                    "the first {max} are advertised; the rest are added with them but not advertised; move them to virtual_ipaddress_excluded to say so"
                ),
            );
            let excess = i.vips.split_off(max);
            i.vips_excluded.extend(excess);
        }
    }
}

fn scripts(cfg: &Config, r: &mut Report) {
    let security = cfg.global.enable_script_security;
    let global = cfg.global.script_user.as_ref();
    let any_notify = cfg
        .instances
        .iter()
        .map(|i| &i.notify)
        .chain(cfg.sync_groups.iter().map(|g| &g.notify))
        .any(|n| n.scripts().next().is_some());
    // keepalived: set_default_script_user fails -> "Error setting global
    // script uid/gid" (a configuration error), and every script without a
    // user of its own is then removed. Refused here, before anything runs.
    let global_ok = match (global, &cfg.global.script_user_loc) {
        (Some(g), Some(loc)) => match user::resolve(None, Some(g), security) {
            Ok(_) => true,
            Err(e) => {
                r.error(
                    loc,
                    format!("script_user: {e}"),
                    "keepalived refuses to run scripts and notifies then (it would not run them as root); create the user or fix the name",
                );
                false
            }
        },
        _ => true,
    };
    let mut default_reported = false;
    let mut default_user = |r: &mut Report, loc: &Loc| {
        if global.is_some() || default_reported {
            return;
        }
        default_reported = true;
        match user::resolve(None, None, security) {
            Ok(Some(_)) => {}
            Ok(None) => r.warn(
                loc,
                format!("default user '{}' for script execution does not exist: scripts run as root", user::DEFAULT_SCRIPT_USER),
                "create it (useradd -r -s /sbin/nologin keepalived_script), or set script_user in global_defs",
            ),
            Err(e) => r.error(loc, e, "create the user, or set script_user in global_defs"),
        }
    };
    let used: std::collections::HashSet<&str> =
        cfg.instances.iter().flat_map(|i| i.track_script.iter().map(|t| t.name.as_str())).collect();
    for sc in cfg.scripts.iter().filter(|s| used.contains(s.name.as_str())) {
        match (&sc.user, &sc.user_loc) {
            (Some(own), Some(loc)) => {
                if let Err(e) = user::resolve(Some(own), None, security) {
                    r.error(
                        loc,
                        format!("vrrp_script {}: {e}", sc.name),
                        "keepalived removes a script whose user is missing; create it or fix the name",
                    );
                }
            }
            _ if !global_ok => {}
            _ => default_user(r, &sc.loc),
        }
        if let Some(why) = program_problem(&sc.script, security) {
            r.error(
                &sc.loc,
                format!("vrrp_script {}: {why}", sc.name),
                "keepalived disables such a track script; fix the path or install the program",
            );
        }
    }
    if !any_notify {
        return;
    }
    let owners = cfg
        .instances
        .iter()
        .map(|i| ("instance", &i.name, &i.loc, &i.notify))
        .chain(cfg.sync_groups.iter().map(|g| ("sync group", &g.name, &g.loc, &g.notify)));
    for (what, name, at, notify) in owners {
        for (key, cmd, loc) in notify.scripts() {
            let loc = loc.unwrap_or(at);
            if global_ok {
                default_user(r, loc);
            }
            if let Some(why) = program_problem(cmd, security) {
                r.error(
                    loc,
                    format!("{what} {name}: {key}: {why}"),
                    "keepalived disables such a notify script; fix the path or install the program",
                );
            }
        }
    }
}

//! What the configuration check refuses or adjusts, seen from outside:
//! `check-config` and `run` refuse the same files with the same first
//! error (issue 12 case 11, and case 8's missing script user), a missing
//! interface is the same warning in both, and an instance with more VIPs
//! than an advert carries still has exactly one master (case 5).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::netns::{Netns, unique};
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::Process;

struct Dir(PathBuf);

impl Dir {
    fn new() -> Result<Dir> {
        let d = std::env::temp_dir().join(unique("vrrp-refuse-"));
        std::fs::create_dir_all(&d)?;
        Ok(Dir(d))
    }
    fn file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let p = self.0.join(name);
        std::fs::write(&p, bytes)?;
        Ok(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `cmd` to completion within `limit` (killed after it); exit code
/// (None: killed or signalled) and stdout + stderr.
fn finish(cmd: &mut Command, limit: Duration) -> Result<(Option<i32>, String)> {
    let out = std::env::temp_dir().join(unique("vrrp-refuse-out-"));
    let f = std::fs::File::create(&out)?;
    let mut child = cmd.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f).spawn().context("spawn")?;
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait()? {
            break s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    Ok((code, text))
}

/// The first line that reports an error, without the program's prefix.
fn first_error(text: &str) -> Option<String> {
    text.lines().find(|l| l.contains(": error: ")).map(|l| {
        let l = l.split_once("vrrp-agent: error: ").map_or(l, |(_, r)| r);
        l.to_owned()
    })
}

/// Whether `line` starts with `path:LINE:COL: error:`.
fn located(line: &str, path: &Path) -> bool {
    let Some(rest) = line.strip_prefix(&format!("{}:", path.display())) else { return false };
    let mut parts = rest.splitn(3, ':');
    let num = |p: Option<&str>| p.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    num(parts.next()) && num(parts.next()) && parts.next().is_some_and(|r| r.starts_with(" error: "))
}

fn check_config(path: &Path) -> Result<(Option<i32>, String)> {
    // RUST_BACKTRACE=1 as on a machine where it was set globally: an error
    // exit must still read as a configuration error, not a crash.
    finish(
        Command::new(agent_bin()?).env("RUST_BACKTRACE", "1").arg("check-config").arg("-f").arg(path),
        Duration::from_secs(60),
    )
}

fn instance(body: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  interface lo\n  virtual_router_id 51\n  virtual_ipaddress {{\n    192.0.2.130/24\n  }}\n{body}}}\n"
    )
}

#[test]
fn check_config_and_run_refuse_the_same_files() -> Result<()> {
    if !require_root("check_config_and_run_refuse_the_same_files") {
        return Ok(());
    }
    let dir = Dir::new()?;
    let ns = Netns::new("vcf")?;
    let mut latin1_value = instance("").into_bytes();
    let at = latin1_value.windows(12).position(|w| w == b"interface lo").context("there")? + 11;
    latin1_value[at] = 0xf6;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty file", Vec::new()),
        (
            "missing check script",
            format!(
                "vrrp_script chk {{\n  script \"/nonexistent/check.sh\"\n}}\n{}",
                instance("  track_script {\n    chk\n  }\n")
            )
            .into_bytes(),
        ),
        ("missing notify script", instance("  notify_master /nonexistent/notify.sh\n").into_bytes()),
        (
            "misspelled global script_user",
            format!(
                "global_defs {{\n  script_user keepalived_scirpt\n}}\n{}",
                instance("  notify_master /bin/true\n")
            )
            .into_bytes(),
        ),
        (
            "missing user of a script",
            format!(
                "vrrp_script chk {{\n  script /bin/true\n  user vrrp_agent_no_such_user\n}}\n{}",
                instance("  track_script {\n    chk\n  }\n")
            )
            .into_bytes(),
        ),
        ("missing include", format!("{}includem /nonexistent/vrrp.conf\n", instance("")).into_bytes()),
        ("Latin-1 outside a comment", latin1_value),
    ];
    // Every case is tried; the failures are reported together.
    let mut failed = Vec::new();
    for (what, text) in cases {
        let path = dir.file(&format!("{}.conf", what.replace(' ', "-")), &text)?;
        let (code, out) = check_config(&path)?;
        if code != Some(2) {
            failed.push(format!("check-config accepted the {what} (exit {code:?}):\n{out}"));
            continue;
        }
        if out.to_lowercase().contains("backtrace") {
            failed.push(format!("{what}: check-config printed a backtrace:\n{out}"));
        }
        let Some(want) = first_error(&out) else {
            failed.push(format!("{what}: no error line from check-config in\n{out}"));
            continue;
        };
        if !located(&want, &path) {
            failed.push(format!("{what}: not located: {want}"));
        }
        let bin = agent_bin()?;
        let mut run = ns.command(bin.to_str().context("path")?);
        run.env("RUST_BACKTRACE", "full").arg("run").arg("-f").arg(&path).args([
            "--name",
            &unique("cf"),
            "--no-pin",
        ]);
        let (code, out) = finish(&mut run, Duration::from_secs(20))?;
        if out.to_lowercase().contains("backtrace") {
            failed.push(format!("{what}: run printed a backtrace:\n{out}"));
        }
        if code.is_none_or(|c| c == 0) {
            failed.push(format!("run did not refuse the {what} (exit {code:?}):\n{out}"));
        } else if first_error(&out).as_deref() != Some(want.as_str()) {
            failed.push(format!("{what}: check-config says\n{want}\nrun says\n{out}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n---\n"));
    Ok(())
}

#[test]
fn a_missing_interface_is_the_same_warning_in_both() -> Result<()> {
    if !require_root("a_missing_interface_is_the_same_warning_in_both") {
        return Ok(());
    }
    let dir = Dir::new()?;
    let ns = Netns::new("vcw")?;
    let path =
        dir.file("k.conf", instance("").replace("interface lo", "interface vrrp_later0").as_bytes())?;
    let (code, out) = check_config(&path)?;
    assert_eq!(code, Some(0), "a missing interface is a warning:\n{out}");
    let want = format!(
        "{}:1:1: warning: instance VI_1: interface `vrrp_later0` does not exist (yet)",
        path.display()
    );
    assert!(out.contains(&want), "{out}");
    assert!(out.contains("the instance starts in FAULT and leaves it when the interface appears"), "{out}");
    let bin = agent_bin()?;
    let mut cmd = ns.command(bin.to_str().context("path")?);
    cmd.arg("run").arg("-f").arg(&path).args(["--name", &unique("cw"), "--no-pin"]);
    let p = Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
    p.wait_for_line_once(&want, Duration::from_secs(20))?;
    Ok(())
}

const VIPS: usize = 300;

fn vip(k: usize) -> String {
    if k < 254 { format!("198.51.100.{}", k + 1) } else { format!("203.0.113.{}", k - 253) }
}

fn many_vips_conf(state: &str, priority: u8) -> String {
    let mut s = format!(
        "vrrp_instance VI_1 {{\n  state {state}\n  interface eth0\n  virtual_router_id 57\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n"
    );
    for k in 0..VIPS {
        s += &format!("    {}\n", vip(k));
    }
    s += "  }\n}\n";
    s
}

#[test]
fn more_vips_than_an_advert_holds_still_elect_one_master() -> Result<()> {
    if !require_root("more_vips_than_an_advert_holds_still_elect_one_master") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let a = seg.agent(0, &many_vips_conf("MASTER", 150), &[])?;
    let b = seg.agent(1, &many_vips_conf("BACKUP", 100), &[])?;
    let first = vip(0);
    let last_advertised = vip(254);
    let excess = vip(VIPS - 1);
    seg.wait_holders(&first, &[0], Duration::from_secs(15))?;
    seg.wait_holders(&excess, &[0], Duration::from_secs(15))?;
    // Before the fix every advert failed (count > 255) and the backup took
    // over after Master_Down_Interval (3.6 s here): hold the single-holder
    // rule for twice that, on an advertised VIP and on an excess one.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        for addr in [&first, &last_advertised, &excess] {
            let h = seg.holders(addr)?;
            if h != [0] {
                bail!("after {:?}, {addr} is held by nodes {h:?}, not [0]", start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let warned = a.lines().iter().any(|l| {
        l.contains("(VI_1) Number of VIPs (300) exceeds maximum/space available in packet (max 255 addresses) - excess moved to eVIPs")
    });
    assert!(warned, "no warning in {:#?}", a.lines());
    assert!(
        !b.lines().iter().any(|l| l.contains("Entering MASTER")),
        "the backup became master: {:#?}",
        b.lines()
    );
    Ok(())
}

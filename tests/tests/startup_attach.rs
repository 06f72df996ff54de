//! The instances start (enter BACKUP) while the XDP attach runs on a thread
//! of its own (vrrp-agent/src/daemon/run.rs, datapath/attach.rs): the
//! order of the start, and a stop at any moment of it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::netns;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::{Process, wait_until};

const VIP_BACKUP: &str = "192.0.2.140";
const VIP_OWNER: &str = "192.0.2.141";

/// A backup (it waits for a master that never comes) and an address
/// owner (MASTER at once, with its VIP): both what a stop must undo.
fn conf() -> String {
    format!(
        "vrrp_instance VI_B {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  priority 100\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP_BACKUP}/24\n  }}\n}}\n\
         vrrp_instance VI_O {{\n  state MASTER\n  interface eth0\n  virtual_router_id 62\n  priority 255\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP_OWNER}/24\n  }}\n}}\n"
    )
}

fn link_text(seg: &Segment) -> Result<String> {
    let out = seg.nodes[0].ns.ip(&["-d", "link", "show", "dev", "eth0"])?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn addr_text(seg: &Segment) -> Result<String> {
    let out = seg.nodes[0].ns.ip(&["addr", "show", "dev", "eth0"])?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Processes whose command line names the agent `name` (supervisor, worker).
fn processes_of(name: &str) -> Result<Vec<String>> {
    let out = Command::new("pgrep").args(["-a", "-f", &format!("--name {name}$")]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}

fn spawn(seg: &Segment, conf_path: &std::path::Path, name: &str, extra: &[&str]) -> Result<Process> {
    let bin = agent_bin()?;
    let mut cmd = seg.nodes[0].ns.command(bin.to_str().context("agent path")?);
    cmd.arg("run").arg("-f").arg(conf_path).args(["--name", name]).args(extra);
    Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())
}

#[test]
fn the_instances_enter_backup_before_the_attach_is_done_and_hear_from_then() -> Result<()> {
    let t = "the_instances_enter_backup_before_the_attach_is_done_and_hear_from_then";
    if !require_root(t) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.60/24"])?;
    let name = netns::unique("sa");
    seg.clean_cache_of(&name);
    let path = seg.file("order.conf", &conf())?;
    let mut p = spawn(&seg, &path, &name, &["-l", "debug"])?;
    p.wait_for_line("receive path up (xdp)", Duration::from_secs(15))?;
    let lines = p.lines();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let backup = at("(VI_B) Entering BACKUP STATE").context(format!("no BACKUP: {lines:#?}"))?;
    let attached = at("XDP program attached to eth0").context(format!("no attach: {lines:#?}"))?;
    let up = at("receive path up (xdp)").context("no receive path")?;
    assert!(
        at("start-up: receive path attaching").is_some(),
        "the attach did not run on its thread: {lines:#?}"
    );
    assert!(backup < attached && attached < up, "BACKUP, then attached, then up: {lines:#?}");
    // The program is on the interface and its link pinned, the owner holds
    // its VIP, the backup none.
    assert!(link_text(&seg)?.contains("prog/xdp"), "not attached");
    let pins = PathBuf::from("/sys/fs/bpf/vrrp-agent").join(&name);
    wait_until(Duration::from_secs(5), || Ok(pins.join("link_eth0").exists()))?;
    wait_until(Duration::from_secs(5), || Ok(addr_text(&seg)?.contains(VIP_OWNER)))?;
    assert!(!addr_text(&seg)?.contains(VIP_BACKUP), "the backup holds its VIP");
    let status = p.stop(Duration::from_secs(10))?;
    assert!(status.success(), "clean stop: {status}");
    assert!(!link_text(&seg)?.contains("xdp"), "the program stayed attached");
    assert!(!pins.join("link_eth0").exists(), "the link stayed pinned");
    // The program was cached before the attach (every map, the event ring
    // too): the next start reuses it, and attaches it beside the start again.
    let mut again = spawn(&seg, &path, &name, &["-l", "debug"])?;
    again.wait_for_line("receive path up (xdp)", Duration::from_secs(15))?;
    let lines = again.lines();
    assert!(
        lines.iter().any(|l| l.contains("reused the verified XDP program")),
        "the restart did not reuse the cached program: {lines:#?}"
    );
    assert!(again.stop(Duration::from_secs(10))?.success(), "clean stop");
    assert!(!link_text(&seg)?.contains("xdp"), "the program stayed attached");
    Ok(())
}

/// A stop at any moment of the start (before, during or after the attach
/// on its thread) ends the agent within a bound and leaves nothing: no
/// process, no XDP program on the interface, no pinned link, no VIP. (An
/// earlier thread at start made SIGTERM ignored in 3 runs of 5.)
#[test]
fn sigterm_at_any_moment_of_the_start_stops_the_agent_and_leaves_nothing() -> Result<()> {
    let t = "sigterm_at_any_moment_of_the_start_stops_the_agent_and_leaves_nothing";
    if !require_root(t) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.61/24"])?;
    let path = seg.file("term.conf", &conf())?;
    // A fixed pseudo-random series (xorshift) of delays 0-60 ms: the same
    // moments on every run, spread over the whole start.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut moments = Vec::new();
    for k in 0..25 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(x % 61);
        let name = netns::unique("st");
        seg.clean_cache_of(&name);
        let mut p = spawn(&seg, &path, &name, &[])?;
        std::thread::sleep(delay);
        p.signal(Signal::SIGTERM)?;
        let start = Instant::now();
        let status = loop {
            if let Some(s) = p.try_wait()? {
                break s;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = p.signal(Signal::SIGKILL);
                bail!("run {k} (SIGTERM {delay:?} after the spawn): no exit within 10 s:\n{:#?}", p.lines());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Exit 0, or killed by the SIGTERM itself when it came before the
        // supervisor had blocked its signals (it had started nothing).
        use std::os::unix::process::ExitStatusExt as _;
        assert!(
            status.success() || status.signal() == Some(libc::SIGTERM),
            "run {k} (SIGTERM {delay:?} after the spawn): {status}:\n{:#?}",
            p.lines()
        );
        // The worker goes with its supervisor (it waits for it).
        wait_until(Duration::from_secs(5), || Ok(processes_of(&name)?.is_empty()))
            .with_context(|| format!("run {k}: a process left: {:?}", processes_of(&name)))?;
        let link = link_text(&seg)?;
        assert!(
            !link.contains("xdp"),
            "run {k} (SIGTERM {delay:?} after the spawn): XDP left on eth0:\n{link}"
        );
        let addrs = addr_text(&seg)?;
        assert!(
            !addrs.contains(VIP_OWNER) && !addrs.contains(VIP_BACKUP),
            "run {k} (SIGTERM {delay:?} after the spawn): a VIP left:\n{addrs}"
        );
        let link_pin = PathBuf::from("/sys/fs/bpf/vrrp-agent").join(&name).join("link_eth0");
        assert!(!link_pin.exists(), "run {k}: the link stayed pinned");
        let lines = p.lines();
        let stage = if lines.iter().any(|l| l.contains("receive path up")) {
            "after the attach"
        } else if lines.iter().any(|l| l.contains("Entering")) {
            "during the attach"
        } else {
            "before the instances"
        };
        moments.push(stage);
    }
    eprintln!("stops: {moments:?}");
    Ok(())
}

/// The attach fails on the thread (another agent's program holds the
/// interface, for another VRID): `--receive xdp` has entered its first
/// states already and stops, exit status non-zero, its owner's VIP removed;
/// `--receive auto` falls back to raw sockets then, with the usual warning.
#[test]
fn an_attach_that_fails_after_backup_stops_xdp_mode_and_moves_auto_to_sockets() -> Result<()> {
    let t = "an_attach_that_fails_after_backup_stops_xdp_mode_and_moves_auto_to_sockets";
    if !require_root(t) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.62/24"])?;
    let other = "vrrp_instance VI_X {\n  state BACKUP\n  interface eth0\n  virtual_router_id 63\n  priority 100\n  advert_int 1\n  virtual_ipaddress {\n    192.0.2.142/24\n  }\n}\n";
    let _first = seg.agent(0, other, &["--receive", "xdp"])?;
    assert!(link_text(&seg)?.contains("prog/xdp"), "the first agent's program is attached");
    let path = seg.file("taken.conf", &conf())?;

    let name = netns::unique("sx");
    seg.clean_cache_of(&name);
    let mut xdp = spawn(&seg, &path, &name, &["--receive", "xdp"])?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = xdp.try_wait()? {
            break s;
        }
        if start.elapsed() > Duration::from_secs(15) {
            bail!("--receive xdp did not stop when the attach failed:\n{:#?}", xdp.lines());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let lines = xdp.lines();
    assert!(!status.success(), "--receive xdp exited 0 with the attach refused: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("Entering")), "it had started its instances: {lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("receive path up")), "{lines:#?}");
    wait_until(Duration::from_secs(5), || Ok(processes_of(&name)?.is_empty()))?;
    assert!(!addr_text(&seg)?.contains(VIP_OWNER), "the owner's VIP stayed after the failed start");

    let name = netns::unique("sa");
    seg.clean_cache_of(&name);
    let mut auto = spawn(&seg, &path, &name, &[])?;
    auto.wait_for_line("receive path up (socket)", Duration::from_secs(15))?;
    let lines = auto.lines();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let backup = at("(VI_B) Entering BACKUP STATE").context(format!("no BACKUP: {lines:#?}"))?;
    let warned = at("XDP unavailable").context(format!("no fallback warning: {lines:#?}"))?;
    assert!(backup < warned, "the fallback came after the first states: {lines:#?}");
    assert!(at("receiving on a raw socket on eth0").is_some(), "{lines:#?}");
    assert!(auto.stop(Duration::from_secs(10))?.success(), "clean stop");
    // The first agent's program is still there, and only it.
    assert!(link_text(&seg)?.contains("prog/xdp"), "the first agent's program went");
    Ok(())
}

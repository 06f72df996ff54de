//! systemd's readiness protocol (sd_notify(3)) and watchdog, as a
//! `Type=notify` unit with `WatchdogSec=` would see them: the agent runs
//! with NOTIFY_SOCKET pointing at a unix datagram socket this test reads,
//! WATCHDOG_USEC set and WATCHDOG_PID set to the started process's pid (as
//! systemd sets it, to the unit's main process: the supervisor).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::lab::{Segment, agent_bin, signal_worker};
use vrrp_tests::netns;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::{Process, wait_until};

/// The watchdog timeout given to the agent: pings due every 500 ms.
const WATCHDOG: Duration = Duration::from_secs(1);

/// Messages received, with their arrival time.
type Log = Arc<Mutex<Vec<(Instant, String)>>>;

/// A notify socket in a fresh directory, read by a thread into a log.
struct Listener {
    path: PathBuf,
    log: Log,
}

impl Listener {
    fn new(dir: &Path) -> Result<Listener> {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if let Ok(mut v) = l.lock() {
                    v.push((Instant::now(), msg));
                }
            }
        });
        Ok(Listener { path, log })
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.log.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Messages with a line equal to `line`, arrived at or after `since`.
    fn with(&self, line: &str, since: Instant) -> Vec<(Instant, String)> {
        self.all().into_iter().filter(|(t, m)| *t >= since && m.lines().any(|l| l == line)).collect()
    }

    /// Wait for a message with `line` from `since`; the first one.
    fn wait(&self, line: &str, since: Instant, limit: Duration) -> Result<(Instant, String)> {
        wait_until(limit, || Ok(!self.with(line, since).is_empty()))
            .with_context(|| format!("no {line} within {limit:?}; got {:?}", self.all()))?;
        self.with(line, since).into_iter().next().context("vanished")
    }
}

fn conf(script: &Path, notify: &Path) -> String {
    format!(
        "vrrp_script chk {{\n  script \"{}\"\n  interval 1\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  priority 100\n  advert_int 1\n  track_script {{\n    chk\n  }}\n  notify_master \"{}\"\n  virtual_ipaddress {{\n    192.0.2.161/24\n  }}\n}}\n",
        script.display(),
        notify.display()
    )
}

/// A script that writes its environment to `out` and succeeds.
fn env_dump(seg: &Segment, name: &str, out: &Path) -> Result<PathBuf> {
    let p = seg.file(name, &format!("#!/bin/sh\nenv > {}.tmp && mv {0}.tmp {0}\nexit 0\n", out.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(p)
}

/// Start the agent (with its supervisor) as systemd would, with the
/// notify socket and watchdog variables.
fn start(seg: &Segment, conf: &str, notify: &Path) -> Result<Process> {
    let path = seg.file(&format!("{}.conf", netns::unique("sd")), conf)?;
    let bin = agent_bin()?;
    let name = netns::unique("sd");
    seg.clean_cache_of(&name);
    // WATCHDOG_PID is the started process's own pid: `exec` keeps the
    // shell's, as systemd's is the unit's main process.
    let mut cmd = seg.nodes[0].ns.command("sh");
    cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(bin)
        .arg("run")
        .arg("-f")
        .arg(&path)
        .args(["--name", &name])
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string());
    Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())
}

#[test]
fn ready_watchdog_reload_and_stop_reach_systemd() -> Result<()> {
    if !require_root("ready_watchdog_reload_and_stop_reach_systemd") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.60/24"])?;
    let dir = seg.file("marker", "")?.parent().context("segment directory")?.to_path_buf();
    let listener = Listener::new(&dir)?;
    let check_env = dir.join("check.env");
    let notify_env = dir.join("notify.env");
    let check = env_dump(&seg, "check.sh", &check_env)?;
    let notify = env_dump(&seg, "notify.sh", &notify_env)?;
    let t0 = Instant::now();
    let mut agent = start(&seg, &conf(&check, &notify), &listener.path)?;

    // READY=1 once the instance has entered its first state: the STATUS=
    // sent with it names the state (INIT would mean too early).
    let (ready_at, ready) = listener.wait("READY=1", t0, Duration::from_secs(15))?;
    let status = ready.lines().find_map(|l| l.strip_prefix("STATUS=")).context("no STATUS with READY")?;
    assert!(status.contains("VI_1 BACKUP") || status.contains("VI_1 MASTER"), "READY's status: {status:?}");
    // Alone on the segment, it becomes MASTER: a STATUS= line says so.
    listener.wait("STATUS=VI_1 MASTER", t0, Duration::from_secs(15))?;

    // Pings at about half WATCHDOG_USEC, from the worker (the supervisor
    // handed the watchdog over: WATCHDOG_PID was its own pid).
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let pings: Vec<Instant> = listener.with("WATCHDOG=1", from).into_iter().map(|(t, _)| t).collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    println!("watchdog pings in 3 s: {}, gaps {gaps:?}", pings.len());
    assert!(
        (4..=8).contains(&pings.len()),
        "expected ~6 pings in 3 s at 500 ms, got {}: {gaps:?}",
        pings.len()
    );
    for g in &gaps {
        assert!(
            *g >= Duration::from_millis(300) && *g <= Duration::from_millis(900),
            "ping gap {g:?}: {gaps:?}"
        );
    }
    assert!(
        listener.with("WATCHDOG=1", t0).first().is_some_and(|(t, _)| *t >= ready_at),
        "a ping before READY=1"
    );

    // SIGHUP (systemd's ExecReload= sends it to the supervisor, which
    // passes it on): RELOADING=1, then READY=1 again.
    let hup = Instant::now();
    agent.signal(Signal::SIGHUP)?;
    let (reloading_at, _) = listener.wait("RELOADING=1", hup, Duration::from_secs(5))?;
    let (ready_again, _) = listener.wait("READY=1", hup, Duration::from_secs(5))?;
    assert!(ready_again >= reloading_at, "READY=1 before RELOADING=1");

    // A stuck loop: the worker stopped sends no ping; once it continues,
    // the pings resume.
    signal_worker(&agent, Signal::SIGSTOP)?;
    // A ping already on its way may land just after the stop.
    std::thread::sleep(Duration::from_millis(100));
    let stopped = Instant::now();
    std::thread::sleep(WATCHDOG * 2);
    let during =
        listener.with("WATCHDOG=1", stopped).into_iter().filter(|(t, _)| *t < stopped + WATCHDOG * 2).count();
    signal_worker(&agent, Signal::SIGCONT)?;
    assert_eq!(during, 0, "pings while the worker was stopped");
    listener.wait("WATCHDOG=1", stopped + WATCHDOG * 2, Duration::from_secs(5))?;

    // Scripts ran, and neither saw the protocol's variables.
    wait_until(Duration::from_secs(10), || Ok(check_env.exists() && notify_env.exists()))
        .context("the check and notify scripts did not run")?;
    for f in [&check_env, &notify_env] {
        let env = std::fs::read_to_string(f)?;
        assert!(env.contains("PATH="), "{} is not an environment dump: {env}", f.display());
        for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            assert!(!env.contains(&format!("{v}=")), "{} saw {v}:\n{env}", f.display());
        }
    }

    // SIGTERM: STOPPING=1, and a clean exit.
    let term = Instant::now();
    let status = agent.stop(Duration::from_secs(10))?;
    listener.wait("STOPPING=1", term, Duration::from_secs(2))?;
    if !status.success() {
        bail!("agent exited with {status}");
    }
    Ok(())
}

//! A segment with VRRP nodes: network namespaces on a bridge, agents or
//! keepalived started in them, and the questions tests ask (who holds the
//! VIP, since when).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::netns::{self, Netns, run};
use crate::process::Process;

/// The vrrp-agent binary: `VRRP_AGENT_BIN`, else next to the test binary's
/// directory (target/<profile>/vrrp-agent).
pub fn agent_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("VRRP_AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    let dir = exe.parent().and_then(|d| d.parent()).context("target directory")?;
    let bin = dir.join("vrrp-agent");
    if !bin.is_file() {
        bail!(
            "{} not found: build it first (cargo build -p vrrp-agent, as `cargo xtask test` does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// One node: a namespace plugged into the segment's bridge as `eth0`.
pub struct Node {
    /// Its namespace.
    pub ns: Netns,
    /// Its address (CIDR).
    pub addr: String,
}

/// A segment: a bridge in its own namespace, and nodes.
pub struct Segment {
    /// The bridge's namespace (ports `p0`, `p1`, ... toward the nodes).
    pub lan: Netns,
    /// The nodes.
    pub nodes: Vec<Node>,
    dir: PathBuf,
    /// The `--name`s of the agents started here: what a killed one leaves
    /// under /run/vrrp-agent and /sys/fs/bpf/vrrp-agent goes with the
    /// segment.
    names: std::sync::Mutex<Vec<String>>,
    /// Agent names whose verified-program cache goes with the segment.
    caches: std::sync::Mutex<Vec<String>>,
}

impl Segment {
    /// A bridge with one node per address in `addrs` (CIDR, 192.0.2.0/24).
    pub fn new(addrs: &[&str]) -> Result<Segment> {
        let lan = Netns::new("vsl")?;
        lan.bridge("br0")?;
        let mut nodes = Vec::new();
        for (i, a) in addrs.iter().enumerate() {
            let ns = Netns::new(&format!("vs{i}"))?;
            lan.plug("br0", &format!("p{i}"), &ns, "eth0")?;
            ns.ip(&["addr", "add", a, "dev", "eth0"])?;
            nodes.push(Node { ns, addr: (*a).to_owned() });
        }
        let dir = std::env::temp_dir().join(netns::unique("vrrp-seg-"));
        std::fs::create_dir_all(&dir)?;
        Ok(Segment {
            lan,
            nodes,
            dir,
            names: std::sync::Mutex::new(Vec::new()),
            caches: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A second segment on the same nodes: bridge `br1` in the bridge's
    /// namespace, each node plugged into it as `eth1` with `addrs[i]`
    /// (CIDR; e.g. 198.51.100.0/24), for instances on two interfaces.
    pub fn second_link(&self, addrs: &[&str]) -> Result<()> {
        self.lan.bridge("br1")?;
        for (i, (n, a)) in self.nodes.iter().zip(addrs).enumerate() {
            self.lan.plug("br1", &format!("q{i}"), &n.ns, "eth1")?;
            n.ns.ip(&["addr", "add", a, "dev", "eth1"])?;
        }
        Ok(())
    }

    /// Write `text` to a file of this segment's and return its path.
    pub fn file(&self, name: &str, text: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    }

    /// Start vrrp-agent on node `i` with the configuration `conf` and
    /// extra arguments; waits until it has entered its first state.
    pub fn agent(&self, i: usize, conf: &str, extra: &[&str]) -> Result<Process> {
        self.agent_named(i, conf, extra).map(|(p, _)| p)
    }

    /// As `agent`, also returning the agent's `--name` (for its status).
    pub fn agent_named(&self, i: usize, conf: &str, extra: &[&str]) -> Result<(Process, String)> {
        let name = netns::unique("t");
        let p = self.agent_as(i, conf, &name, extra)?;
        Ok((p, name))
    }

    /// As `agent`, with the given `--name` (to restart "the same" agent).
    pub fn agent_as(&self, i: usize, conf: &str, name: &str, extra: &[&str]) -> Result<Process> {
        self.agent_env(i, conf, name, extra, &[])
    }

    /// As `agent_as`, with environment variables set for the agent only
    /// (e.g. a test-only knob, without touching the test process's own
    /// environment, which parallel tests share).
    pub fn agent_env(
        &self,
        i: usize,
        conf: &str,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Process> {
        let path = self.file(&format!("agent{i}-{}.conf", netns::unique("")), conf)?;
        if let Ok(mut names) = self.names.lock() {
            names.push(name.to_owned());
        }
        let bin = agent_bin()?;
        let mut cmd = self.nodes[i].ns.command(bin.to_str().context("agent path")?);
        cmd.arg("run").arg("-f").arg(&path).args(["--name", name]).args(extra);
        cmd.envs(env.iter().copied());
        let mut p =
            Process::spawn(&format!("agent{i}"), &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
        p.wait_for_line("Entering", Duration::from_secs(15))?;
        // The instances start while the XDP attach runs (run.rs): tests
        // that look at the receive path (or the program on the interface)
        // right after the first state wait for it.
        p.wait_for_line("receive path up", Duration::from_secs(15))?;
        Ok(p)
    }

    /// Unload the verified-program cache (vrrp-agent/src/datapath/cache.rs)
    /// of an agent named `name` that the test starts itself, when the
    /// segment goes: a clean stop leaves it pinned, by design. Only the
    /// cache: the name may be another test's too ("default").
    pub fn clean_cache_of(&self, name: &str) {
        if let Ok(mut c) = self.caches.lock() {
            c.push(name.to_owned());
        }
    }

    /// Start keepalived (Debian's) on node `i` with `conf`.
    pub fn keepalived(&self, i: usize, conf: &str) -> Result<Process> {
        let tag = netns::unique("ka");
        let path = self.file(&format!("{tag}.conf"), conf)?;
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            self.nodes[i].ns.name(),
            "keepalived",
            "-n",
            "-l",
            "-D",
            "--vrrp",
            "--no-syslog",
        ]);
        cmd.arg("-f").arg(&path);
        cmd.arg("-p").arg(self.dir.join(format!("{tag}.pid")));
        cmd.arg("-r").arg(self.dir.join(format!("{tag}.vrrp.pid")));
        let mut p = Process::spawn(
            &format!("keepalived{i}"),
            &mut cmd,
            std::env::var_os("VRRP_TEST_ECHO").is_some(),
        )?;
        p.wait_for_line("Entering", Duration::from_secs(15))?;
        Ok(p)
    }

    /// `vrrp-agent stats --name NAME` in node `i`'s namespace: the packets
    /// counted under `verdict`, on any interface.
    pub fn verdict_count(&self, i: usize, name: &str, verdict: &str) -> Result<u64> {
        let bin = agent_bin()?;
        let mut stats = self.nodes[i].ns.command(bin.to_str().context("agent path")?);
        stats.args(["stats", "--name", name]);
        let out = netns::run(&mut stats)?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .filter(|l| l.contains(&format!(" verdict={verdict} ")))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("packets=")))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum())
    }

    /// Wait until no node has a tentative IPv6 address (duplicate address
    /// detection done): IPv6 adverts go out from the link-local address.
    pub fn wait_ipv6_ready(&self) -> Result<()> {
        for n in &self.nodes {
            crate::process::wait_until(Duration::from_secs(5), || {
                let out = n.ns.ip(&["-6", "addr", "show", "dev", "eth0", "tentative"])?;
                Ok(out.stdout.is_empty())
            })?;
        }
        Ok(())
    }

    /// Whether node `i` has `addr` (on any interface: eth0 may be gone).
    pub fn holds(&self, i: usize, addr: &str) -> Result<bool> {
        let out = self.nodes[i].ns.ip(&["-o", "addr", "show"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.split_whitespace().any(|w| w.split('/').next() == Some(addr)))
    }

    /// Which nodes hold `addr`.
    pub fn holders(&self, addr: &str) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for i in 0..self.nodes.len() {
            if self.holds(i, addr)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Wait until exactly `want` hold `addr`; returns how long it took.
    pub fn wait_holders(&self, addr: &str, want: &[usize], limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let h = self.holders(addr)?;
            if h == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                bail!("after {limit:?}, {addr} is held by nodes {h:?}, not {want:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Files an agent killed on purpose leaves by design (the next start
        // of its name reads them); the name ends with the test.
        let names = self.names.get_mut().map(std::mem::take).unwrap_or_default();
        for name in names {
            for ext in ["json", "live", "vips", "resume", "lock", "data", "stats"] {
                let _ = std::fs::remove_file(format!("/run/vrrp-agent/{name}.{ext}"));
            }
            let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/vrrp-agent/{name}"));
        }
        let caches = self.caches.get_mut().map(std::mem::take).unwrap_or_default();
        for name in caches {
            let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/vrrp-agent/{name}/cache"));
            let _ = std::fs::remove_dir(format!("/sys/fs/bpf/vrrp-agent/{name}"));
        }
    }
}

/// `ip netns exec` of a command in node `ns`, for tools that need it.
pub fn exec(ns: &Netns, args: &[&str]) -> Result<String> {
    let out = run(Command::new("ip").args(["netns", "exec", ns.name()]).args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `Icmp: OutDestUnreachs` of /proc/net/snmp inside `ns`: rises when the
/// kernel answers a unicast advert nobody consumed with protocol
/// unreachable.
pub fn icmp_unreachables_sent(ns: &Netns) -> Result<u64> {
    let text = exec(ns, &["cat", "/proc/net/snmp"])?;
    let mut lines = text.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (lines.next().context("Icmp header")?, lines.next().context("Icmp values")?);
    let i = names.split_whitespace().position(|n| n == "OutDestUnreachs").context("OutDestUnreachs")?;
    values.split_whitespace().nth(i).context("value")?.parse().context("number")
}

/// The worker process of an agent started by `Segment::agent*` (which
/// starts the supervisor): its pid, from the supervisor's
/// "supervising worker pid N" line.
pub fn worker_pid(p: &Process) -> Result<nix::unistd::Pid> {
    let line = p.wait_for_line_once("supervising worker pid", Duration::from_secs(5))?;
    let pid = line
        .split("supervising worker pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<i32>().ok())
        .with_context(|| format!("no pid in {line:?}"))?;
    Ok(nix::unistd::Pid::from_raw(pid))
}

/// Send `sig` to the worker of agent `p` (SIGKILL there is a crash the
/// supervisor cleans up after; to the supervisor, a clean resignation).
pub fn signal_worker(p: &Process, sig: nix::sys::signal::Signal) -> Result<()> {
    let pid = worker_pid(p)?;
    nix::sys::signal::kill(pid, sig).with_context(|| format!("signalling worker {pid}"))
}

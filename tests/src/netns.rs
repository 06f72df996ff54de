//! Network namespaces created with iproute2 and deleted on drop, even when
//! the test that made them panics.

use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call, e.g. `vt4242x3`; fits the
/// 15-byte interface name limit with a suffix of up to 4 bytes.
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Run a command, failing with its stderr when it fails.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

/// A network namespace; `ip netns del` on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create a namespace named `<prefix><unique>` with loopback up.
    pub fn new(prefix: &str) -> Result<Netns> {
        let name = unique(prefix);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A `Command` for `nsenter --net=/run/netns/<ns> PROG`: the program
    /// runs in this network namespace but keeps the host's mount namespace
    /// (so the host's bpffs at /sys/fs/bpf stays visible, unlike with
    /// `ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name)).arg("--").arg(program);
        c
    }

    /// Run `f` on a thread that has entered this namespace; sockets and
    /// interface lookups made there belong to it.
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).context("setns")?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread in namespace panicked"))?
    }

    /// Create a veth pair: `here` in this namespace, `there` in `peer`,
    /// both up, with the given addresses (CIDR) if any.
    pub fn veth_to(&self, here: &str, peer: &Netns, there: &str) -> Result<()> {
        self.ip(&["link", "add", here, "type", "veth", "peer", "name", there, "netns", peer.name()])?;
        self.ip(&["link", "set", here, "up"])?;
        peer.ip(&["link", "set", there, "up"])?;
        Ok(())
    }

    /// Add a bridge `name`, up, in this namespace.
    pub fn bridge(&self, name: &str) -> Result<()> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Connect `node` to bridge `bridge` here: a veth with end `port` here,
    /// enslaved to the bridge, and end `iface` in `node`.
    pub fn plug(&self, bridge: &str, port: &str, node: &Netns, iface: &str) -> Result<()> {
        self.veth_to(port, node, iface)?;
        self.ip(&["link", "set", port, "master", bridge])?;
        Ok(())
    }

    /// The interface index of `iface` in this namespace.
    pub fn ifindex(&self, iface: &str) -> Result<u32> {
        let out = self.ip(&["-o", "link", "show", "dev", iface])?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("parsing ifindex from {text:?}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the interfaces inside it.
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("cleanup: {e:#}");
        }
    }
}

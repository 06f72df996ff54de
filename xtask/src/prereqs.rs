//! What building and testing need, found or installed.
//!
//! Two ways to build the XDP program (see ../shared/TOOLCHAIN.md):
//! - Debian: `rustc-web` (rustc 1.96, LLVM 22) with the prebuilt BPF `core`
//!   from `libstd-rust-web-dev-bpf`; no `build-std` needed.
//! - rustup: a nightly toolchain with `rust-src` and `-Z build-std=core`.
//!
//! Both link with bpf-linker. On Debian as root the missing pieces are
//! installed; anywhere else a missing piece stops us with instructions.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::sh;

/// The bpf-linker release we install, built against LLVM 22 to match
/// rustc-web.
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_BUILD_PACKAGES: [&str; 3] = ["rustc-web", "libstd-rust-web-dev-bpf", "llvm-22-dev"];
/// Tools the integration tests and the demo run.
const TEST_TOOLS: [(&str, &str); 11] = [
    ("bpftool", "bpftool"),
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("tshark", "tshark"),
    ("keepalived", "keepalived"),
    // The firewall tests partition nodes with nftables rules.
    ("nft", "nftables"),
    // FRR's vrrpd beside the agent (tests/tests/other_speakers.rs) and as
    // its peer (tests/tests/frr_peer.rs), run in the tests' namespaces
    // with their own run directories (`-N`). Note: on a systemd machine the package's
    // frr.service starts zebra and staticd in the root namespace (vrrpd=no
    // in /etc/frr/daemons); unconfigured, they route nothing.
    ("vtysh", "frr"),
    // The Accept Mode tests ping the VIP from a third namespace.
    ("ping", "iputils-ping"),
    // The VMAC and FRR tests read and set per-interface sysctls.
    ("sysctl", "procps"),
    // The batching test counts the agent's sendmmsg calls.
    ("strace", "strace"),
    // The steady benchmark times the softirqs run in a master's context.
    ("perf", "linux-perf"),
];

/// What a task needs.
pub struct Need {
    ebpf: bool,
    test_tools: bool,
    install: bool,
}

impl Need {
    /// For building the XDP program.
    pub fn build() -> Need {
        Need { ebpf: true, test_tools: false, install: true }
    }
    /// For building and testing (and the demo).
    pub fn all() -> Need {
        Need { ebpf: true, test_tools: true, install: true }
    }
    /// Report everything, install nothing.
    pub fn check_only() -> Need {
        Need { ebpf: true, test_tools: true, install: false }
    }
}

/// How the XDP program gets built.
#[derive(Clone, Debug)]
pub enum Route {
    /// Debian's rustc-web with its prebuilt BPF `core`.
    Debian {
        /// The rustc to use.
        rustc: PathBuf,
    },
    /// rustup's nightly with rust-src and build-std.
    Nightly,
}

/// Found tools.
#[derive(Clone, Debug)]
pub struct Tools {
    /// How to build.
    pub route: Route,
    /// Directory holding bpf-linker, to put first in PATH.
    pub bpf_linker_dir: PathBuf,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists() && which("apt-get").is_some()
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn cargo_home_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

/// A bpf-linker that runs (a copy built against a removed LLVM does not).
fn find_bpf_linker() -> Option<PathBuf> {
    let candidates = which("bpf-linker").into_iter().chain([cargo_home_bin().join("bpf-linker")]);
    for c in candidates {
        if c.is_file() && sh::output(Command::new(&c).arg("--version")).is_some() {
            return c.parent().map(Path::to_path_buf);
        }
    }
    None
}

fn debian_route() -> Option<Route> {
    let rustc = PathBuf::from(DEBIAN_RUSTC);
    let sysroot = sh::output(Command::new(&rustc).args(["--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib/rustlib/bpfel-unknown-none/lib");
    let has_core = std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"));
    has_core.then_some(Route::Debian { rustc })
}

fn nightly_route() -> Option<Route> {
    let sysroot = sh::output(Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]))?;
    let core = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core/Cargo.toml");
    core.is_file().then_some(Route::Nightly)
}

fn detect_route() -> Option<Route> {
    debian_route().or_else(nightly_route)
}

fn dpkg_installed(pkg: &str) -> bool {
    sh::output(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", pkg]))
        .is_some_and(|s| s.trim() == "installed")
}

/// apt-get install the packages not yet installed; `apt-get update` once.
fn apt_install(pkgs: &[&str], updated: &mut bool) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    sh::step(&format!("installing Debian packages: {}", missing.join(" ")));
    if !*updated {
        sh::run(Command::new("apt-get").args(["update", "-q"]))?;
        *updated = true;
    }
    sh::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
}

fn install_bpf_linker() -> Result<()> {
    sh::step(&format!("installing bpf-linker {BPF_LINKER_VERSION} (LLVM 22), about a minute"));
    let path = std::env::join_paths(std::iter::once(PathBuf::from(LLVM_PREFIX).join("bin")).chain(
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default(),
    ))?;
    sh::run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .env("PATH", path)
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .args(["install", "--force", "--locked", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", "llvm-22"]),
    )
}

/// Find (or, allowed and possible, install) what `need` asks for.
pub fn ensure(need: &Need) -> Result<Tools> {
    let can_install = need.install && is_debian() && is_root();
    let mut updated = false;
    let mut problems = Vec::new();

    let mut route = if need.ebpf { detect_route() } else { None };
    if need.ebpf && route.is_none() && can_install {
        apt_install(&DEBIAN_BUILD_PACKAGES, &mut updated)?;
        route = detect_route();
    }
    if need.ebpf && route.is_none() {
        problems.push(
            "No Rust compiler that can build for bpfel-unknown-none.\n  \
             Debian 12: apt-get install rustc-web libstd-rust-web-dev-bpf llvm-22-dev\n  \
             elsewhere: rustup toolchain install nightly --component rust-src"
                .to_owned(),
        );
    }

    let mut linker = if need.ebpf { find_bpf_linker() } else { None };
    if need.ebpf && linker.is_none() && can_install {
        apt_install(&["llvm-22-dev"], &mut updated)?;
        install_bpf_linker()?;
        linker = find_bpf_linker();
    }
    if need.ebpf && linker.is_none() {
        problems.push(format!(
            "bpf-linker is missing (or cannot run: its LLVM was removed).\n  \
             Debian 12: apt-get install llvm-22-dev && \\\n    \
             PATH={LLVM_PREFIX}/bin:$PATH LLVM_PREFIX={LLVM_PREFIX} cargo install --locked \\\n    \
             bpf-linker --version {BPF_LINKER_VERSION} --no-default-features --features llvm-22\n  \
             elsewhere: cargo install bpf-linker (see its README for the LLVM it needs)"
        ));
    }

    if need.test_tools {
        let missing: Vec<(&str, &str)> =
            TEST_TOOLS.iter().copied().filter(|(t, _)| which(t).is_none()).collect();
        if !missing.is_empty() && can_install {
            let pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
            apt_install(&pkgs, &mut updated)?;
        }
        for (tool, pkg) in TEST_TOOLS {
            if which(tool).is_none() {
                problems.push(format!("`{tool}` is missing: apt-get install {pkg}"));
            }
        }
    }

    if !problems.is_empty() {
        let why = if !need.install {
            "(--check: nothing was installed)"
        } else if !is_debian() {
            "(not Debian: install them yourself)"
        } else if !is_root() {
            "(not root: run as root to have them installed, or install them yourself)"
        } else {
            "(installing them failed; see above)"
        };
        bail!("missing prerequisites {why}:\n\n- {}\n", problems.join("\n- "));
    }
    if let (Some(route), Some(bpf_linker_dir)) = (route, linker) {
        return Ok(Tools { route, bpf_linker_dir });
    }
    // Only reachable for a need without eBPF; describe the situation.
    Ok(Tools { route: Route::Nightly, bpf_linker_dir: PathBuf::new() })
}

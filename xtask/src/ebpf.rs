//! Building the XDP program for bpfel-unknown-none, with BTF so bpftool
//! prints typed map contents.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::prereqs::{Route, Tools};
use crate::sh;

/// Where the object lands; vrrp-agent's build.rs embeds it from here.
pub fn object_path() -> PathBuf {
    sh::root().join("target/ebpf/bpfel-unknown-none/release/vrrp-ebpf")
}

/// Build vrrp-ebpf and check the object carries BTF.
pub fn build(tools: &Tools) -> Result<()> {
    sh::step("building the XDP program (vrrp-ebpf)");
    let root = sh::root();
    let path = std::env::join_paths(std::iter::once(tools.bpf_linker_dir.clone()).chain(
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default(),
    ))?;
    let mut cmd = match &tools.route {
        Route::Debian { rustc } => {
            let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            // The prebuilt BPF core matches this compiler; aya-ebpf needs
            // unstable features, hence RUSTC_BOOTSTRAP for this build only.
            c.env("RUSTC", rustc).env("RUSTC_BOOTSTRAP", "1").arg("build");
            c
        }
        Route::Nightly => {
            let mut c = Command::new("rustup");
            c.args(["run", "nightly", "cargo", "build", "-Z", "build-std=core"]).env_remove("RUSTC");
            c
        }
    };
    cmd.current_dir(root.join("vrrp-ebpf"))
        .env("PATH", path)
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // --disable-expand-memcpy-in-order: with bpf-linker's default
        // (LLVM's -bpf-expand-memcpy-in-order) every memset and memmove
        // the compiler emits, zeroing a struct or copying between two map
        // values, becomes a call to a byte loop that the kernel's verifier
        // walks byte by byte at every start (11k of the 28k instructions
        // it processed: bench-results/startup.md); without it LLVM
        // expands them into word-sized loads and stores.
        .env(
            "CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS",
            "-C debuginfo=2 -C link-arg=--btf -C link-arg=--disable-expand-memcpy-in-order -D warnings",
        )
        .args(["--release", "--locked", "--target", "bpfel-unknown-none", "--target-dir"])
        .arg(root.join("target/ebpf"));
    sh::run(&mut cmd)?;
    let obj = object_path();
    let bytes = std::fs::read(&obj).with_context(|| format!("reading {}", obj.display()))?;
    if !bytes.windows(5).any(|w| w == b".BTF\0") {
        bail!("{} has no .BTF section: bpftool would print raw hex", obj.display());
    }
    println!("XDP object: {} ({} bytes, with BTF)", obj.display(), bytes.len());
    Ok(())
}

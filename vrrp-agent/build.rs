//! Embeds the XDP object when `cargo xtask build-ebpf` has produced it.
//!
//! `cargo build` of the agent must work before the eBPF build has run, so a
//! missing object is not an error here: the binary is built without it and
//! says at run time how to get it (`cargo xtask build`) or where to point
//! `--ebpf-object`.
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let default = manifest.join("../target/ebpf/bpfel-unknown-none/release/vrrp-ebpf");
    println!("cargo::rerun-if-env-changed=VRRP_EBPF_OBJECT");
    let object = env::var_os("VRRP_EBPF_OBJECT").map(PathBuf::from).unwrap_or(default);
    println!("cargo::rerun-if-changed={}", object.display());
    println!("cargo::rustc-check-cfg=cfg(vrrp_ebpf_embedded)");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("vrrp-ebpf.o");
    match fs::read(&object) {
        Ok(bytes) => {
            fs::write(&out, bytes).expect("write OUT_DIR/vrrp-ebpf.o");
            println!("cargo::rustc-cfg=vrrp_ebpf_embedded");
        }
        Err(_) => {
            fs::write(&out, b"").expect("write OUT_DIR/vrrp-ebpf.o");
            println!(
                "cargo::warning=XDP object {} not found: building vrrp-agent without it \
                 (run `cargo xtask build` to embed it)",
                object.display()
            );
        }
    }
}

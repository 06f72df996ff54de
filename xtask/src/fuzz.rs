//! `cargo xtask fuzz`: libFuzzer over every parser in vrrp-common
//! (vrrp-common/fuzz), through cargo-fuzz on the nightly toolchain.

use std::process::Command;

use anyhow::{Context, Result, bail};

use std::net::IpAddr;
use std::path::Path;

use vrrp_common::wire::ip;

use crate::{prereqs, sh};

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Run the `parse` target for `seconds`, installing cargo-fuzz if needed.
pub fn run(seconds: u64) -> Result<()> {
    if sh::output(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])).is_none() {
        bail!(
            "fuzzing needs a nightly toolchain (libFuzzer's sanitizer flags): \
             rustup toolchain install nightly"
        );
    }
    if sh::output(sh::cargo().args(["fuzz", "--version"])).is_none() {
        sh::step(&format!("installing cargo-fuzz {CARGO_FUZZ_VERSION}"));
        sh::run(sh::cargo().args(["install", "--locked", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION]))?;
    }
    if prereqs::which("c++").is_none() {
        bail!("libFuzzer is C++: install a C++ compiler (Debian: apt-get install g++)");
    }
    sh::step(&format!("fuzzing vrrp-common's parsers for {seconds} s"));
    let corpus = sh::root().join("target/fuzz-corpus/parse");
    std::fs::create_dir_all(&corpus).context("creating the corpus directory")?;
    let seeds = seed_from_fixtures(&corpus)?;
    println!("{seeds} seeds from tests/fixtures in {}", corpus.display());
    sh::run(
        Command::new("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", "--fuzz-dir"])
            .arg(sh::root().join("vrrp-common/fuzz"))
            .arg("parse")
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .current_dir(sh::root().join("vrrp-common")),
    )
}

/// Turn every fixture frame into a seed in the target's input layout:
/// flags (bit 0 IPv6, bit 1 IPv4 group destination) | src (16) | dst (16) |
/// TTL (1) | VRRP message.
fn seed_from_fixtures(corpus: &Path) -> Result<usize> {
    let dir = sh::root().join("tests/fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "hex") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let frame = hex(line.trim()).with_context(|| format!("{}: line {}", path.display(), i + 1))?;
            let view = ip::parse(frame.get(14..).unwrap_or_default())
                .map_err(|v| anyhow::anyhow!("{}: line {}: {v:?}", path.display(), i + 1))?;
            let mut seed = vec![0u8; 34];
            match (view.src, view.dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    seed[0] = if d.is_multicast() { 2 } else { 0 };
                    seed[1..5].copy_from_slice(&s.octets());
                    seed[17..21].copy_from_slice(&d.octets());
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    seed[0] = 1;
                    seed[1..17].copy_from_slice(&s.octets());
                    seed[17..33].copy_from_slice(&d.octets());
                }
                _ => bail!("{}: mixed families", path.display()),
            }
            seed[33] = view.ttl;
            seed.extend_from_slice(view.payload);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            std::fs::write(corpus.join(format!("fixture-{stem}-{i}")), &seed)?;
            n += 1;
        }
    }
    Ok(n)
}

fn hex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("not hex")).collect()
}

//! `cargo xtask fuzz`: libFuzzer over every parser in vrrp-common
//! (vrrp-common/fuzz, target `parse`) or over the keepalived.conf reader
//! (vrrp-agent/fuzz, target `config`), through cargo-fuzz on the nightly
//! toolchain.

use std::process::Command;

use anyhow::{Context, Result, bail};

use std::net::IpAddr;
use std::path::Path;

use vrrp_common::wire::ip;

use crate::{prereqs, sh};

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What to fuzz.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// vrrp-common's packet parsers.
    Parse,
    /// The keepalived.conf lexer, statement tree and model.
    Config,
}

/// Run `target` for `seconds`, installing cargo-fuzz if needed.
pub fn run(target: Target, seconds: u64) -> Result<()> {
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
    let (name, crate_dir) = match target {
        Target::Parse => ("parse", "vrrp-common"),
        Target::Config => ("config", "vrrp-agent"),
    };
    let corpus = sh::root().join("target/fuzz-corpus").join(name);
    std::fs::create_dir_all(&corpus).context("creating the corpus directory")?;
    let seeds = match target {
        Target::Parse => {
            sh::step(&format!("fuzzing vrrp-common's parsers for {seconds} s"));
            seed_from_fixtures(&corpus)?
        }
        Target::Config => {
            sh::step(&format!("fuzzing the keepalived.conf reader for {seconds} s"));
            seed_configs(&corpus)?
        }
    };
    println!("{seeds} seeds in {}", corpus.display());
    sh::run(
        Command::new("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", "--fuzz-dir"])
            .arg(sh::root().join(crate_dir).join("fuzz"))
            .arg(name)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            // Lines longer than keepalived's 1023 bytes are refused at
            // once; longer inputs only repeat that path.
            .args(if target == Target::Config { &["-max_len=16384"][..] } else { &[][..] })
            .arg("-print_final_stats=1")
            .current_dir(sh::root().join(crate_dir)),
    )
}

/// keepalived.conf features the seeds below cover beyond the fixtures:
/// scripts, notifies, IPv6, unicast, excluded VIPs, includes (the fuzz
/// target's scratch directory holds `inc.conf`), comments of both kinds.
const CONFIG_SEEDS: &[&str] = &[
    "global_defs {\n  router_id lb1\n  vrrp_version 3\n  script_user root\n  enable_script_security\n}\n\
     vrrp_script chk {\n  script \"/bin/true x\"\n  interval 2\n  timeout 1\n  weight -20 reverse\n  rise 2\n  fall 3\n  user root\n  init_fail\n}\n\
     vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 0.5\n\
     track_script {\n    chk weight 10\n  }\n  track_interface {\n    eth1 weight -5\n  }\n  notify /bin/true\n  notify_master \"/bin/true master\"\n\
     virtual_ipaddress {\n    192.0.2.130/24 dev eth0 label eth0:1 scope global\n  }\n  virtual_ipaddress_excluded {\n    198.51.100.7\n  }\n}\n",
    "vrrp_instance V6 {\n  interface eth0\n  virtual_router_id 7\n  nopreempt\n  preempt_delay 5\n  unicast_src_ip 2001:db8::1\n\
     unicast_peer {\n    2001:db8::2\n  }\n  virtual_ipaddress {\n    2001:db8::10/64\n  }\n}\n! bang comment\n# hash comment\n",
    "include inc.conf\ninclude *.conf\nvrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 52\n  authentication {\n    auth_type PASS\n    auth_pass e^Ho6HWa\n  }\n\
     virtual_ipaddress {\n    203.0.113.1\n  }\n  track_script {\n    chk\n  }\n}\nvirtual_server 192.0.2.1 80 {\n  real_server 192.0.2.2 80 {\n    TCP_CHECK {\n    }\n  }\n}\n",
];

/// Seeds for the config target: the tutorial's node configurations, every
/// fenced block of the shared tutorial that defines an instance, and
/// CONFIG_SEEDS.
fn seed_configs(corpus: &Path) -> Result<usize> {
    let mut n = 0;
    let dir = sh::root().join("tests/fixtures/tutorial");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "conf") {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            std::fs::copy(&path, corpus.join(format!("fixture-{stem}")))?;
            n += 1;
        }
    }
    let tutorial = sh::root().join("../shared/reference/keepalived-ha-tutorial.md");
    if let Ok(text) = std::fs::read_to_string(&tutorial) {
        let mut block: Option<String> = None;
        for line in text.lines() {
            match &mut block {
                None if line.trim_start().starts_with("```") => block = Some(String::new()),
                Some(b) if line.trim_start().starts_with("```") => {
                    if b.contains("vrrp_instance") || b.contains("vrrp_script") {
                        std::fs::write(corpus.join(format!("tutorial-{n}")), b.as_bytes())?;
                        n += 1;
                    }
                    block = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                }
                None => {}
            }
        }
    }
    for (i, s) in CONFIG_SEEDS.iter().enumerate() {
        std::fs::write(corpus.join(format!("seed-{i}")), s)?;
        n += 1;
    }
    Ok(n)
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

//! `cargo xtask <task>`: the project's build, test and demo entry points.
//!
//! Every task that needs a tool first checks for it; on Debian as root it
//! installs what is missing (apt packages, bpf-linker), otherwise it stops
//! with one screen saying what to install.

mod bench;
mod bench_failover;
mod bench_health;
mod bench_plot;
mod bench_proc;
mod bench_scale;
mod bench_startup;
mod bench_steady;
mod bench_targets;
mod demo;
mod ebpf;
mod fuzz;
mod package;
mod prereqs;
mod sh;
mod soak;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "vrrp-agent build, test and demo tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check the build and test prerequisites; install the missing ones
    /// (Debian, as root) or say how.
    Prereqs {
        /// Only report, install nothing.
        #[arg(long)]
        check: bool,
    },
    /// Build the XDP program (vrrp-ebpf) for bpfel-unknown-none with BTF.
    BuildEbpf,
    /// Build the XDP program, then the agent with the program embedded.
    Build {
        /// Build the userspace crates in release mode.
        #[arg(long)]
        release: bool,
    },
    /// Lint, unit tests, then the integration tests that need root.
    Test,
    /// Build the Debian package (target/package/vrrp-agent_VERSION_ARCH.deb)
    /// and check it by installing it into a scratch root.
    Package {
        /// Package the debug build (quicker; what `cargo xtask test` checks).
        #[arg(long)]
        debug: bool,
    },
    /// Build everything and run a two-node lab in network namespaces.
    Demo,
    /// A long run of a pair with many instances whose health scripts
    /// flap, counting file descriptors, threads, memory and child
    /// processes before and after (bench-results/soak.md).
    Soak {
        /// Minutes of flapping.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Instances per node (1-254).
        #[arg(long, default_value_t = 250)]
        instances: u16,
        /// Distinct flapping scripts the instances share.
        #[arg(long, default_value_t = 25)]
        scripts: u16,
    },
    /// Run the benchmark scenarios; results in bench-results/.
    Bench {
        /// Seconds per flood arm.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Runs per failover series.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Only one scenario: crash, graceful, health, split, flood, steady, scale, startup or scale4k (only by name).
        #[arg(long)]
        only: Option<String>,
        /// Advert intervals for the failover series, in ms (graceful runs
        /// the sub-second ones).
        #[arg(long, value_delimiter = ',', default_values_t = [1000u16, 100, 10])]
        intervals: Vec<u16>,
        /// Extra argument for the agent arm's master (repeatable), e.g.
        /// `--master-arg=--receive --master-arg=socket` to take its XDP
        /// teardown out of a crash measurement.
        #[arg(long = "master-arg", allow_hyphen_values = true)]
        master_args: Vec<String>,
        /// Where to write results.json, report.md and the plots (default:
        /// bench-results/, or bench-results/only-<scenario>/ with --only, so
        /// that a partial run does not replace the full report).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Only redraw the plots from the output directory's results.json.
        #[arg(long)]
        replot: bool,
        /// Seconds of steady-state measurement.
        #[arg(long, default_value_t = 30)]
        steady_seconds: u64,
        /// Instances in the scale scenario (VRIDs 1..=N).
        #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u16).range(2..=254))]
        instances: u16,
        /// scale4k (`--only scale4k`): interfaces between the two nodes.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=100))]
        scale4k_ifaces: u16,
        /// scale4k: VRIDs per interface.
        #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u16).range(1..=250))]
        scale4k_vrids: u16,
        /// scale4k: seconds of CPU measurement.
        #[arg(long, default_value_t = 20)]
        scale4k_seconds: u64,
        /// scale4k: which arms (agent, keepalived).
        #[arg(long, value_delimiter = ',', default_values_t = ["agent".to_owned(), "keepalived".to_owned()])]
        scale4k_arms: Vec<String>,
    },
    /// Fuzz the VRRP parsers or the keepalived.conf reader (libFuzzer via
    /// cargo-fuzz, nightly toolchain).
    Fuzz {
        /// How long to run.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// What: `parse` (vrrp-common's packet parsers) or `config` (the
        /// keepalived.conf lexer, tree and model).
        #[arg(long, value_enum, default_value_t = fuzz::Target::Parse)]
        target: fuzz::Target,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Prereqs { check } => {
            let set = if check { prereqs::Need::check_only() } else { prereqs::Need::all() };
            prereqs::ensure(&set).map(|_| ())
        }
        Task::BuildEbpf => ebpf::build(&prereqs::ensure(&prereqs::Need::build())?),
        Task::Build { release } => build(release),
        Task::Test => test(),
        Task::Package { debug } => package::build(!debug).and_then(|deb| package::verify(&deb)),
        Task::Demo => demo::run(),
        Task::Fuzz { seconds, target } => fuzz::run(target, seconds),
        Task::Soak { minutes, instances, scripts } => {
            build(true)?;
            prereqs::ensure(&prereqs::Need::all())?;
            soak::run(
                &soak::Opts { minutes, instances, scripts },
                &sh::root().join("target/release/vrrp-agent"),
            )
        }
        Task::Bench {
            seconds,
            runs,
            only,
            intervals,
            master_args,
            out,
            replot,
            steady_seconds,
            instances,
            scale4k_ifaces,
            scale4k_vrids,
            scale4k_seconds,
            scale4k_arms,
        } => bench::run(&bench::Opts {
            seconds,
            runs,
            only,
            intervals_ms: intervals,
            master_args,
            steady_seconds,
            instances,
            scale4k: bench_scale::Shape {
                ifaces: scale4k_ifaces,
                vrids: scale4k_vrids,
                seconds: scale4k_seconds,
            },
            scale4k_arms,
            out,
            replot,
        }),
    }
}

/// The eBPF object first, then the userspace crates, which embed it.
pub fn build(release: bool) -> Result<()> {
    let tools = prereqs::ensure(&prereqs::Need::build())?;
    ebpf::build(&tools)?;
    let mut cmd = sh::cargo();
    cmd.args(["build", "--workspace", "--bins", "--locked"]);
    if release {
        cmd.arg("--release");
    }
    sh::run(&mut cmd)
}

fn test() -> Result<()> {
    let tools = prereqs::ensure(&prereqs::Need::all())?;
    ebpf::build(&tools)?;
    sh::step("format check");
    sh::run(sh::cargo().args(["fmt", "--all", "--check"]))?;
    sh::run(sh::cargo().args(["fmt", "--check", "--manifest-path", "vrrp-ebpf/Cargo.toml"]))?;
    sh::step("clippy");
    sh::run(sh::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh::step("unit and property tests (no privileges needed)");
    sh::run(sh::cargo().args(["test", "--workspace", "--locked", "--exclude", "vrrp-tests"]))?;
    sh::run(sh::cargo().args(["test", "--locked", "-p", "vrrp-tests", "--lib"]))?;
    sh::step("integration tests (network namespaces, XDP, real agents and keepalived; need root)");
    // The tests start the agent binary itself.
    sh::run(sh::cargo().args(["build", "--locked", "-p", "vrrp-agent", "--bins"]))?;
    if !prereqs::is_root() {
        println!("not root: the integration tests will print SKIPPED (run as root to run them)");
    }
    sh::run(sh::cargo().args([
        "test",
        "--locked",
        "-p",
        "vrrp-tests",
        "--test",
        "*",
        "--",
        "--test-threads=2",
    ]))?;
    sh::step("the Debian package (debug build) builds, installs and purges");
    package::verify(&package::build(false)?)?;
    sh::step("all tests passed");
    Ok(())
}

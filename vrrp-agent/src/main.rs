//! The `vrrp-agent` command.

mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};
use cli::stats::StatsArgs;
use cli::watch::WatchArgs;
use vrrp_agent::object;

/// eBPF-accelerated VRRP agent, compatible with keepalived's VRRP side.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (RUST_LOG, when set,
    /// takes precedence, with per-module filters).
    #[arg(short = 'l', long, global = true, default_value = "info")]
    log_level: log::LevelFilter,
    /// Configuration ID for keepalived's conditional lines (`@ID ...`,
    /// `@^ID ...`) and `$_INSTANCE` (default: the host name up to its
    /// first dot, as keepalived's `-i/--config-id`; `-i` itself is
    /// keepalived's command line's, see `vrrp-agent -h` there).
    #[arg(long, global = true)]
    config_id: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach the XDP fast path to interfaces and report the VRRP speakers
    /// and verdicts it sees, until interrupted.
    Watch(WatchArgs),
    /// Print the verdict counters and peers a running `watch` pinned, one
    /// `key=value` record per line.
    Stats(StatsArgs),
    /// Print a running agent's instances: state, priorities, counters.
    Status(cli::status::StatusArgs),
    /// Run the VRRP instances of a keepalived.conf, in the foreground, until
    /// SIGTERM or SIGINT (then resign as master and remove the VIPs).
    Run(cli::run::RunArgs),
    /// Restart a running agent without a failover (after an upgrade too):
    /// its masters keep their VIPs and resume advertising within 2.5 x
    /// advert_int (SIGRTMIN+5 to its worker).
    Restart(cli::restart::RestartArgs),
    /// Check a keepalived.conf: print the instances it defines, or every
    /// error with file:line:column and a hint (exit status 2).
    CheckConfig {
        /// The file (default: /etc/vrrp-agent/vrrp-agent.conf if present,
        /// else /etc/keepalived/keepalived.conf).
        #[arg(short = 'f', long = "config")]
        config: Option<std::path::PathBuf>,
    },
    /// Say whether this binary carries its XDP program.
    Info,
    /// Write the man pages and shell completions, generated from this
    /// command line's own definition (used to build the package).
    #[command(hide = true)]
    Generate {
        /// Directory for the man pages (vrrp-agent.8, vrrp-agent-run.8, ...).
        #[arg(long)]
        man: Option<std::path::PathBuf>,
        /// Directory for the completions (bash, zsh, fish).
        #[arg(long)]
        completions: Option<std::path::PathBuf>,
    },
}

/// Man pages (section 8: system administration) and completions for
/// bash, zsh and fish.
fn generate(man: Option<&std::path::Path>, completions: Option<&std::path::Path>) -> Result<()> {
    use anyhow::Context;
    use clap::CommandFactory;
    let cmd = Cli::command().name("vrrp-agent");
    if let Some(dir) = man {
        std::fs::create_dir_all(dir)?;
        let mut pages = vec![(String::from("vrrp-agent"), cmd.clone())];
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let name = format!("vrrp-agent-{}", sub.get_name());
            // clap names are &'static str here (no "string" feature); this
            // runs once, at packaging time.
            let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
            pages.push((name, sub.clone().name(leaked)));
        }
        for (name, page) in pages {
            let path = dir.join(format!("{name}.8"));
            let mut f = std::fs::File::create(&path).with_context(|| format!("{}", path.display()))?;
            clap_mangen::Man::new(page)
                .section("8")
                .render(&mut f)
                .with_context(|| format!("{}", path.display()))?;
        }
    }
    if let Some(dir) = completions {
        std::fs::create_dir_all(dir)?;
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd.clone(), "vrrp-agent", dir)
                .with_context(|| format!("{shell} completion in {}", dir.display()))?;
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    use cli::keepalived::Translated;
    // keepalived's command line (`vrrp-agent -n -f FILE`, `-t`) becomes
    // this program's own before anything else reads it.
    let (argv, namespace, notes) = match cli::keepalived::translate(std::env::args_os().collect()) {
        Translated::Ours(argv) => (argv, None, Vec::new()),
        Translated::Keepalived { argv, namespace, notes } => (argv, namespace, notes),
        Translated::Done { out, code } => {
            if code == cli::exit::OK {
                print!("{out}");
            } else {
                eprint!("{out}");
            }
            return std::process::ExitCode::from(code);
        }
    };
    match real_main(argv, namespace, &notes) {
        Ok(()) => std::process::ExitCode::from(cli::exit::OK),
        // `{:#}`, not the Debug form `fn main() -> Result` prints: that one
        // appends a backtrace when RUST_BACKTRACE is set in the environment,
        // and a configuration error must not look like a crash.
        Err(e) => {
            eprintln!("vrrp-agent: error: {e:#}");
            std::process::ExitCode::from(cli::exit::code_of(&e))
        }
    }
}

fn real_main(argv: Vec<std::ffi::OsString>, namespace: Option<String>, notes: &[String]) -> Result<()> {
    // Started through /proc/self/exe (a hitless restart's re-execution
    // falls back to it), the name would be "exe" in ps, pgrep and
    // /proc/PID/comm; the worker, a fork, inherits this one.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"vrrp-agent".as_ptr() as libc::c_ulong, 0, 0, 0);
    }
    // keepalived-like lines: time, then the message; the level only when it
    // is not plain information.
    let cli = Cli::parse_from(argv);
    if let Some(id) = &cli.config_id {
        vrrp_agent::config::preproc::set_config_id(id.clone());
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(cli.log_level.as_str()))
        .format(|buf, record| {
            use std::io::Write;
            let ts = buf.timestamp_micros();
            match record.level() {
                log::Level::Info => writeln!(buf, "{ts} {}", record.args()),
                level => writeln!(buf, "{ts} {level}: {}", record.args()),
            }
        })
        // Held back while the worker's loop handles a burst (`logbuf`).
        .target(env_logger::Target::Pipe(Box::new(vrrp_agent::logbuf::Sink)))
        .init();
    // A panic's message after the lines logged before it.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        vrrp_agent::logbuf::release_for_panic();
        hook(info);
    }));
    if let (Some(ns), false) = (&namespace, matches!(cli.command, Command::Run(_))) {
        cli::keepalived::enter_namespace(ns)?;
    }
    // Once, from the supervisor (or the agent alone), not again from its worker.
    if !matches!(&cli.command, Command::Run(r) if r.supervised.is_some()) {
        for n in notes {
            log::info!("{n}");
        }
    }
    match cli.command {
        Command::Info => {
            println!("vrrp-agent {}", env!("CARGO_PKG_VERSION"));
            println!("XDP object embedded: {}", if object::embedded() { "yes" } else { "no" });
            Ok(())
        }
        Command::Stats(args) => cli::stats::run(&args),
        Command::Status(args) => cli::status::run(&args),
        Command::Restart(args) => cli::restart::run(&args),
        Command::Run(mut args) => {
            // keepalived's `-s NAME` overrides the configuration's
            // `net_namespace` (keepalived(8)).
            if let Some(ns) = namespace.or_else(|| args.net_namespace()) {
                cli::keepalived::enter_namespace(&ns)?;
                // One agent per namespace, as keepalived's per-namespace
                // /run mount: the default name becomes the namespace's.
                if args.agent.name == cli::DEFAULT_NAME {
                    args.agent.name = ns;
                }
            }
            if args.supervises() {
                // Before any runtime or thread exists: the worker's
                // parent-death signal is tied to the thread that forks it.
                std::process::exit(cli::supervise::run(&args)?);
            }
            run_worker(args)
        }
        Command::CheckConfig { config } => cli::check::run(config.as_deref()),
        Command::Generate { man, completions } => generate(man.as_deref(), completions.as_deref()),
        Command::Watch(args) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(cli::watch::run(args, shutdown_signal()))
        }
    }
}

/// The daemon itself: alone (`--no-supervise`), or as the supervisor's
/// worker (`cli::supervise`, which forks and calls this in the child).
fn run_worker(args: cli::run::RunArgs) -> Result<()> {
    // Before the runtime starts its threads.
    vrrp_agent::daemon::one_heap_arena();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(cli::run::run(args, shutdown_signal()))
}

/// `run_worker` in a forked worker: its exit status, as `main` would
/// have made it (a panic is 101, as the default runtime makes it).
pub(crate) fn worker_exit_code(args: cli::run::RunArgs) -> i32 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_worker(args))) {
        Ok(Ok(())) => i32::from(cli::exit::OK),
        Ok(Err(e)) => {
            eprintln!("vrrp-agent: error: {e:#}");
            i32::from(cli::exit::code_of(&e))
        }
        Err(_) => vrrp_agent::daemon::crash::EXIT_PANIC,
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        log::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

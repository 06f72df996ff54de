//! keepalived's own command line (keepalived(8)), so that units and
//! scripts written for keepalived keep working: `vrrp-agent -f FILE`
//! with no subcommand runs, `-t` tests the configuration, and keepalived's
//! other options are accepted with keepalived's meaning or said to be
//! ignored, and why. It is translated into this program's own command
//! line, which the rest of the program (and the supervisor's worker) sees.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// The subcommands of this program's own command line: an argument list
/// that names one is ours, never keepalived's.
const SUBCOMMANDS: &[&str] = &["run", "check-config", "status", "stats", "watch", "info", "help"];

/// keepalived 2.2.7's options (`keepalived --help`).
#[derive(Parser, Debug)]
#[command(name = "vrrp-agent", disable_version_flag = true, about = "keepalived-compatible command line")]
struct Ka {
    #[arg(short = 'f', long = "use-file")]
    use_file: Option<PathBuf>,
    #[arg(short = 'P', long = "vrrp")]
    vrrp: bool,
    #[arg(short = 'C', long = "check")]
    check: bool,
    #[arg(short = 'B', long = "no_bfd")]
    no_bfd: bool,
    #[arg(long = "all")]
    all: bool,
    #[arg(short = 'l', long = "log-console")]
    log_console: bool,
    #[arg(short = 'D', long = "log-detail")]
    log_detail: bool,
    #[arg(short = 'S', long = "log-facility")]
    log_facility: Option<String>,
    #[arg(short = 'G', long = "no-syslog")]
    no_syslog: bool,
    #[arg(short = 'g', long = "log-file", num_args = 0..=1, require_equals = true)]
    log_file: Option<Option<String>>,
    #[arg(short = 'u', long = "umask")]
    umask: Option<String>,
    #[arg(short = 'X', long = "release-vips")]
    release_vips: bool,
    #[arg(short = 'V', long = "dont-release-vrrp")]
    dont_release_vrrp: bool,
    #[arg(short = 'I', long = "dont-release-ipvs")]
    dont_release_ipvs: bool,
    #[arg(short = 'R', long = "dont-respawn")]
    dont_respawn: bool,
    #[arg(short = 'n', long = "dont-fork")]
    dont_fork: bool,
    #[arg(short = 'd', long = "dump-conf")]
    dump_conf: bool,
    #[arg(short = 'p', long = "pid")]
    pid: Option<PathBuf>,
    #[arg(short = 'r', long = "vrrp_pid")]
    vrrp_pid: Option<PathBuf>,
    #[arg(short = 'c', long = "checkers_pid")]
    checkers_pid: Option<PathBuf>,
    #[arg(short = 'b', long = "bfd_pid")]
    bfd_pid: Option<PathBuf>,
    #[arg(short = 'a', long = "address-monitoring")]
    address_monitoring: bool,
    #[arg(short = 'x', long = "snmp")]
    snmp: bool,
    #[arg(short = 'A', long = "snmp-agent-socket")]
    snmp_agent_socket: Option<String>,
    #[arg(short = 's', long = "namespace")]
    namespace: Option<String>,
    #[arg(short = 'm', long = "core-dump")]
    core_dump: bool,
    #[arg(short = 'M', long = "core-dump-pattern", num_args = 0..=1, require_equals = true)]
    core_dump_pattern: Option<Option<String>>,
    #[arg(short = 'e', long = "all-config")]
    all_config: bool,
    #[arg(short = 'i', long = "config-id")]
    config_id: Option<String>,
    #[arg(long = "signum")]
    signum: Option<String>,
    #[arg(short = 't', long = "config-test", num_args = 0..=1, require_equals = true)]
    config_test: Option<Option<PathBuf>>,
    #[arg(short = 'T', long = "genhash")]
    genhash: bool,
    #[arg(short = 'v', long = "version")]
    version: bool,
    /// The supervisor's worker: passed through (see supervise.rs).
    #[arg(long, hide = true)]
    supervised: Option<String>,
}

/// What a command line turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Translated {
    /// This program's own command line, unchanged.
    Ours(Vec<OsString>),
    /// keepalived's, as this program's own, with a note per option whose
    /// meaning differs (to log once logging is set up).
    Keepalived {
        /// The equivalent command line of this program.
        argv: Vec<OsString>,
        /// keepalived's network namespace option (`-s NAME`).
        namespace: Option<String>,
        /// One line per option that is ignored or means something else.
        notes: Vec<String>,
    },
    /// Answered without running anything: print and exit.
    Done {
        /// What to print on standard output.
        out: String,
        /// The exit status.
        code: u8,
    },
}

/// Whether `args` (without the program name) is keepalived's command line:
/// options only, none of this program's subcommands, and not just a
/// request for this program's help or version.
fn is_keepalived(args: &[OsString]) -> bool {
    let Some(first) = args.first().and_then(|a| a.to_str()) else { return false };
    if !first.starts_with('-') || matches!(first, "-h" | "--help" | "-V" | "--version") && args.len() == 1 {
        return false;
    }
    // Our global options before a subcommand (`-l debug run ...`).
    !args.iter().any(|a| a.to_str().is_some_and(|s| SUBCOMMANDS.contains(&s)))
}

/// keepalived's `--signum` names and the signal this program acts on for
/// each (see daemon/signals.rs).
fn signum(name: &str) -> Option<i32> {
    Some(match name {
        "STOP" => libc::SIGTERM,
        "RELOAD" => libc::SIGHUP,
        "DATA" => libc::SIGUSR1,
        "STATS" => libc::SIGUSR2,
        _ => return None,
    })
}

/// Translate `argv` (with the program name first).
pub fn translate(argv: Vec<OsString>) -> Translated {
    let (prog, args) = match argv.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => return Translated::Ours(argv),
    };
    if !is_keepalived(&args) {
        return Translated::Ours(argv);
    }
    let ka = match Ka::try_parse_from(std::iter::once(prog.clone()).chain(args)) {
        Ok(ka) => ka,
        Err(e) => {
            return Translated::Done { out: e.render().to_string(), code: super::exit::CONFIG };
        }
    };
    if ka.version {
        return Translated::Done {
            out: format!("vrrp-agent {} (keepalived-compatible)\n", env!("CARGO_PKG_VERSION")),
            code: 0,
        };
    }
    if let Some(name) = &ka.signum {
        return match signum(name) {
            Some(n) => Translated::Done { out: format!("{n}\n"), code: 0 },
            None => Translated::Done {
                out: format!(
                    "--signum={name}: not supported by vrrp-agent (STOP, RELOAD, DATA and STATS are)\n"
                ),
                code: super::exit::CONFIG,
            },
        };
    }
    if ka.genhash {
        return Translated::Done {
            out: "-T/--genhash: keepalived's genhash is not part of vrrp-agent\n".into(),
            code: super::exit::CONFIG,
        };
    }
    if ka.check && !ka.vrrp {
        return Translated::Done {
            out: "-C/--check runs keepalived's LVS checker only: vrrp-agent runs the VRRP side alone, so there is nothing to run\n"
                .into(),
            code: super::exit::CONFIG,
        };
    }
    let mut notes = Vec::new();
    let mut note = |set: bool, opt: &str, what: &str| {
        if set {
            notes.push(format!("keepalived option {opt}: {what}"));
        }
    };
    note(ka.vrrp, "-P/--vrrp", "accepted; vrrp-agent runs the VRRP side only");
    note(ka.no_bfd, "-B/--no_bfd", "accepted; vrrp-agent has no BFD");
    note(ka.all, "--all", "accepted; vrrp-agent runs one process for VRRP");
    note(
        ka.log_console,
        "-l/--log-console",
        "accepted; vrrp-agent logs to standard error (the journal under systemd)",
    );
    note(
        ka.log_detail,
        "-D/--log-detail",
        "accepted; vrrp-agent always logs in detail (use -l debug for more)",
    );
    note(ka.log_facility.is_some(), "-S/--log-facility", "ignored; vrrp-agent does not log to syslog itself");
    note(ka.no_syslog, "-G/--no-syslog", "accepted; vrrp-agent does not log to syslog itself");
    note(ka.log_file.is_some(), "-g/--log-file", "ignored; logs go to standard error");
    note(
        ka.umask.is_some(),
        "-u/--umask",
        "ignored; vrrp-agent's files are created 0644 under /run/vrrp-agent",
    );
    note(ka.release_vips, "-X/--release-vips", "ignored; a master removes its VIPs when it leaves MASTER");
    note(ka.dont_release_vrrp, "-V/--dont-release-vrrp", "ignored; the VIPs are removed at stop");
    note(ka.dont_release_ipvs, "-I/--dont-release-ipvs", "ignored; vrrp-agent has no IPVS");
    note(
        ka.dont_respawn,
        "-R/--dont-respawn",
        "accepted; a dead worker is never restarted (its VIPs are removed)",
    );
    note(ka.dont_fork, "-n/--dont-fork", "accepted; vrrp-agent never forks into the background");
    note(ka.dump_conf, "-d/--dump-conf", "ignored; `vrrp-agent check-config` prints the instances");
    note(ka.checkers_pid.is_some(), "-c/--checkers_pid", "ignored; there is no checker process");
    note(ka.bfd_pid.is_some(), "-b/--bfd_pid", "ignored; there is no BFD process");
    note(
        ka.address_monitoring,
        "-a/--address-monitoring",
        "ignored; address changes are logged at debug level",
    );
    note(
        ka.snmp || ka.snmp_agent_socket.is_some(),
        "-x/-A (SNMP)",
        "not supported; read `vrrp-agent status` instead",
    );
    note(
        ka.core_dump || ka.core_dump_pattern.is_some(),
        "-m/-M (core dumps)",
        "ignored; set core dumps in the unit",
    );
    note(
        ka.all_config,
        "-e/--all-config",
        "ignored; a missing plain `include` stays a warning (write `includem` to make it an error)",
    );
    let mut out: Vec<OsString> = vec![prog];
    if let Some(id) = ka.config_id {
        out.extend(["--config-id".into(), id.into()]);
    }
    if let Some(test) = ka.config_test {
        if test.is_some() {
            notes.push(
                "keepalived option -t/--config-test=LOG_FILE: the findings go to standard error".into(),
            );
        }
        out.push("check-config".into());
        if let Some(f) = ka.use_file {
            out.extend(["-f".into(), f.into_os_string()]);
        }
        return Translated::Keepalived { argv: out, namespace: ka.namespace, notes };
    }
    out.push("run".into());
    if let Some(f) = ka.use_file {
        out.extend(["-f".into(), f.into_os_string()]);
    }
    if let Some(p) = ka.pid {
        out.extend(["--pid-file".into(), p.into_os_string()]);
    }
    if let Some(p) = ka.vrrp_pid {
        out.extend(["--worker-pid-file".into(), p.into_os_string()]);
    }
    if let Some(s) = ka.supervised {
        out.extend(["--supervised".into(), s.into()]);
    }
    Translated::Keepalived { argv: out, namespace: ka.namespace, notes }
}

/// Enter network namespace `name` as keepalived's `-s NAME` does (as `ip
/// netns exec NAME` would): /run/netns/NAME.
pub fn enter_namespace(name: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).with_context(|| format!("-s {name}: opening {path}"))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("-s {name}: setns"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Translated {
        translate(std::iter::once("vrrp-agent").chain(args.iter().copied()).map(OsString::from).collect())
    }

    fn argv(tr: &Translated) -> Vec<String> {
        match tr {
            Translated::Keepalived { argv, .. } => {
                argv.iter().map(|a| a.to_string_lossy().into_owned()).collect()
            }
            other => panic!("not keepalived's: {other:?}"),
        }
    }

    #[test]
    fn our_own_command_lines_are_left_alone() {
        for args in [
            &["run", "-f", "x"][..],
            &["-l", "debug", "run", "-f", "x"],
            &["--help"],
            &["-V"],
            &["-i", "lb1", "check-config", "-f", "x"],
            &[],
        ] {
            assert!(matches!(t(args), Translated::Ours(_)), "{args:?}");
        }
    }

    #[test]
    fn debians_unit_line_runs() {
        // Debian's keepalived.service: keepalived --dont-fork $DAEMON_ARGS.
        let tr = t(&["--dont-fork", "-D", "-l", "-f", "/etc/keepalived/keepalived.conf", "-p", "/run/k.pid"]);
        assert_eq!(
            argv(&tr),
            ["vrrp-agent", "run", "-f", "/etc/keepalived/keepalived.conf", "--pid-file", "/run/k.pid"]
        );
        let Translated::Keepalived { notes, .. } = tr else { unreachable!() };
        assert_eq!(notes.len(), 3, "{notes:?}");
    }

    #[test]
    fn config_test_and_config_id() {
        assert_eq!(
            argv(&t(&["-t", "-f", "k.conf", "-i", "lb1"])),
            ["vrrp-agent", "--config-id", "lb1", "check-config", "-f", "k.conf"]
        );
        assert_eq!(
            argv(&t(&["--config-test=/tmp/log", "-f", "k.conf"])),
            ["vrrp-agent", "check-config", "-f", "k.conf"]
        );
    }

    #[test]
    fn answered_at_once() {
        assert_eq!(t(&["--signum=RELOAD"]), Translated::Done { out: format!("{}\n", libc::SIGHUP), code: 0 });
        assert!(matches!(t(&["--signum=JSON"]), Translated::Done { code: 2, .. }));
        assert!(matches!(t(&["-C"]), Translated::Done { code: 2, .. }));
        assert!(matches!(t(&["-v"]), Translated::Done { code: 0, .. }));
        assert!(matches!(t(&["--no-such-option"]), Translated::Done { code: 2, .. }));
    }

    #[test]
    fn the_supervisors_worker_keeps_its_handover() {
        assert_eq!(
            argv(&t(&["-n", "-f", "k.conf", "--supervised", "3,4"])),
            ["vrrp-agent", "run", "-f", "k.conf", "--supervised", "3,4"]
        );
    }
}

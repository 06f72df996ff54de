//! `vrrp-agent status`: what a running `vrrp-agent run` reports about its
//! instances.

use anyhow::{Context, Result};
use vrrp_agent::daemon::status;
use vrrp_agent::instance_lock;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Name of the agent (its `--name`).
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Print the JSON document as it is.
    #[arg(long)]
    pub json: bool,
}

use super::exit::NOT_RUNNING;

/// Print the status file of agent `name`; exit `NOT_RUNNING` when the file
/// is a dead agent's.
pub fn run(args: &StatusArgs) -> Result<()> {
    let path = status::path(&args.name);
    // A killed agent's file stays behind with its last state and counters;
    // liveness comes from the instance lock, which the kernel releases
    // with its last holder (a pid in the file could be reused).
    if !instance_lock::is_running(&args.name) || status::read(&args.name).is_ok_and(|st| !pid_alive(st.pid)) {
        let what = match status::read(&args.name) {
            Ok(st) => format!(
                "{} is stale: pid {} is gone, its last state ({}) is not the network's",
                path.display(),
                st.pid,
                st.instances
                    .iter()
                    .map(|i| format!("{} {}", i.iname, i.state))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(_) => format!("no status in {}", path.display()),
        };
        eprintln!("vrrp-agent --name {} is not running: {what}", args.name);
        std::process::exit(i32::from(NOT_RUNNING));
    }
    if args.json {
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (is `vrrp-agent run --name {}` running?)", path.display(), args.name)
        })?;
        // The file is compact (the worker rewrites it every second);
        // indented here, in the file's field order, for people. A file
        // this binary cannot read (another version's) is printed as is.
        match serde_json::from_str::<status::AgentStatus>(&text)
            .and_then(|st| serde_json::to_string_pretty(&st))
        {
            Ok(pretty) => println!("{pretty}"),
            Err(_) => print!("{text}"),
        }
        return Ok(());
    }
    let st = status::read(&args.name).with_context(|| {
        format!("reading {} (is `vrrp-agent run --name {}` running?)", path.display(), args.name)
    })?;
    println!(
        "vrrp-agent pid {}, receiving via {}{}",
        st.pid,
        st.receive,
        if st.attaching { " (attaching: no backup takes over before it is done)" } else { "" }
    );
    for i in &st.instances {
        println!(
            "{}: {}, priority {} (base {}), VRID {} on {}, VIPs {}, adverts sent {}, became master {} time(s){}",
            i.iname,
            i.state,
            i.effective_priority,
            i.base_priority,
            i.vrid,
            i.interface,
            i.vips.join(" "),
            i.stats.advert_sent,
            i.stats.become_master,
            // Accept Mode off: say so (the drops are in `vrrp-agent stats`).
            if i.accept == 0 { ", no_accept" } else { "" }
        );
    }
    for g in &st.sync_groups {
        println!("sync group {}: {} ({})", g.gname, g.state, g.instances.join(", "));
    }
    Ok(())
}

/// Whether process `pid` exists (the worker of a supervisor that still
/// holds the lock while it cleans up after it).
fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|p| p > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
}

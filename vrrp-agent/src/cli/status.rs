//! `vrrp-agent status`: what a running `vrrp-agent run` reports about its
//! instances.

use anyhow::{Context, Result};
use vrrp_agent::daemon::status;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Name of the agent (its `--name`).
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Print the JSON document as it is.
    #[arg(long)]
    pub json: bool,
}

/// Print the status file of agent `name`.
pub fn run(args: &StatusArgs) -> Result<()> {
    let path = status::path(&args.name);
    if args.json {
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (is `vrrp-agent run --name {}` running?)", path.display(), args.name)
        })?;
        print!("{text}");
        return Ok(());
    }
    let st = status::read(&args.name).with_context(|| {
        format!("reading {} (is `vrrp-agent run --name {}` running?)", path.display(), args.name)
    })?;
    println!("vrrp-agent pid {}, receiving via {}", st.pid, st.receive);
    for i in &st.instances {
        println!(
            "{}: {}, priority {} (base {}), VRID {} on {}, VIPs {}, adverts sent {}, became master {} time(s)",
            i.iname,
            i.state,
            i.effective_priority,
            i.base_priority,
            i.vrid,
            i.interface,
            i.vips.join(" "),
            i.stats.advert_sent,
            i.stats.become_master
        );
    }
    Ok(())
}

//! An instance without `virtual_ipaddress` (issue 14): cloud setups move
//! the address from `notify_master` (an API call), so keepalived runs such
//! a VRRPv2 instance with a warning, and so must the agent. Its adverts
//! carry no address; keepalived and the agent must still agree on one
//! master, and the notify scripts must run as they would.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use vrrp_tests::lab::Segment;
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::wait_until;

fn conf(priority: u8, notify: &Path) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  priority {priority}\n  \
         advert_int 1\n  notify {}\n}}\n",
        notify.display()
    )
}

/// A notify script appending its arguments to `log`.
fn notifier(seg: &Segment, tag: &str) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let log = seg.file(&format!("{tag}.log"), "")?;
    let sh = seg.file(&format!("{tag}.sh"), &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()))?;
    std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755))?;
    Ok((sh, log))
}

fn last_state(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .unwrap_or_default()
}

/// keepalived (priority 150) and the agent (100), both without a VIP:
/// keepalived is master and the agent stays backup for three
/// Master_Down_Intervals (so it hears keepalived's address-less adverts);
/// when keepalived stops, the agent becomes master and says so through
/// notify, with keepalived's arguments.
#[test]
fn an_instance_without_vips_elects_and_notifies_beside_keepalived() -> Result<()> {
    let name = "an_instance_without_vips_elects_and_notifies_beside_keepalived";
    if !require_root(name) || !require_tool(name, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let (ka_sh, ka_log) = notifier(&seg, "ka")?;
    let (ag_sh, ag_log) = notifier(&seg, "agent")?;
    let mut ka = seg.keepalived(0, &conf(150, &ka_sh))?;
    wait_until(Duration::from_secs(10), || Ok(last_state(&ka_log) == "MASTER"))?;
    let agent = seg.agent(1, &conf(100, &ag_sh), &[])?;
    assert!(
        agent.lines().iter().any(|l| l.contains("No VIP specified; at least one is sensible")),
        "the agent warns as keepalived does: {:#?}",
        agent.lines()
    );
    // Master_Down_Interval at priority 100 and 1 s adverts: 3.61 s.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_millis(3 * 3610) {
        assert_ne!(
            last_state(&ag_log),
            "MASTER",
            "the agent must hear keepalived's adverts: {:#?}",
            agent.lines()
        );
        assert_eq!(last_state(&ka_log), "MASTER");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(last_state(&ag_log), "BACKUP", "{:#?}", agent.lines());
    ka.stop(Duration::from_secs(10))?;
    // keepalived resigns with a priority-0 advert: Skew_Time (0.61 s) plus a margin.
    wait_until(Duration::from_secs(5), || Ok(last_state(&ag_log) == "MASTER"))?;
    let notes = std::fs::read_to_string(&ag_log)?;
    assert!(notes.lines().any(|l| l == "INSTANCE VI_1 MASTER 100"), "{notes}");
    Ok(())
}

//! Another VRRP daemon on the agent's interface (issue 12, case 12): during
//! a migration keepalived (or FRR) runs other VRIDs on the same host and
//! interface as the agent. The agent's XDP program must pass their adverts
//! up the stack, or the other daemon's backup stops hearing its master and
//! becomes a second MASTER.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use vrrp_tests::lab::Segment;
use vrrp_tests::privilege::{require_root, require_tool};

/// keepalived's VIP (VRID 6) and the agent's (VRID 5).
const KA_VIP: &str = "192.0.2.66";
const AGENT_VIP: &str = "192.0.2.55";

fn keepalived_conf(state: &str, priority: u8) -> String {
    format!(
        "vrrp_instance KA_6 {{\n  state {state}\n  interface eth0\n  virtual_router_id 6\n  priority {priority}\n  \
         advert_int 1\n  version 3\n  virtual_ipaddress {{\n    {KA_VIP}/24\n  }}\n}}\n"
    )
}

const AGENT_CONF: &str = "vrrp_instance VI_5 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 5\n  \
                          priority 100\n  advert_int 1\n  version 3\n  virtual_ipaddress {\n    192.0.2.55/24\n  \
                          }\n}\n";

/// Node 0: keepalived MASTER of VRID 6. Node 1: keepalived BACKUP of
/// VRID 6 and, on the same eth0, the agent (XDP) for VRID 5. For three
/// Master_Down_Intervals of VRID 6 (3.61 s each at 1 s adverts), only
/// node 0 may hold keepalived's VIP, and node 1's keepalived must never
/// enter MASTER; the agent meanwhile holds its own VIP, with its program
/// counting VRID 6's adverts as passed (`unknown_vrid`).
#[test]
fn keepalived_beside_the_agent_keeps_hearing_its_master() -> Result<()> {
    if !require_root("keepalived_beside_the_agent_keeps_hearing_its_master")
        || !require_tool("keepalived_beside_the_agent_keeps_hearing_its_master", "keepalived")
    {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let _master = seg.keepalived(0, &keepalived_conf("MASTER", 200))?;
    let backup = seg.keepalived(1, &keepalived_conf("BACKUP", 100))?;
    // keepalived's own election first: its master holds VRID 6's VIP.
    seg.wait_holders(KA_VIP, &[0], Duration::from_secs(10))?;
    let (agent, name) = seg.agent_named(1, AGENT_CONF, &["--receive", "xdp"])?;
    assert!(
        agent.lines().iter().any(|l| l.contains("XDP program attached to eth0")),
        "the agent must run its XDP program on eth0: {:#?}",
        agent.lines()
    );
    // Alone on VRID 5, the agent becomes its master (Master_Down_Interval
    // at priority 100: 3.61 s).
    seg.wait_holders(AGENT_VIP, &[1], Duration::from_secs(8))?;
    let watch = Duration::from_millis(3 * 3610);
    let start = Instant::now();
    while start.elapsed() < watch {
        let h = seg.holders(KA_VIP)?;
        if h != [0] {
            bail!(
                "after {:?} with the agent beside it, keepalived's VIP is held by nodes {h:?}: \
                 node 1's keepalived stopped hearing its master\n{:#?}",
                start.elapsed(),
                backup.lines()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !backup.lines().iter().any(|l| l.contains("Entering MASTER STATE")),
        "node 1's keepalived became MASTER of VRID 6: {:#?}",
        backup.lines()
    );
    // The agent's program saw VRID 6's adverts and passed them
    // (unknown_vrid), accepted none of them.
    let bin = vrrp_tests::lab::agent_bin()?;
    let mut stats = seg.nodes[1].ns.command(&bin.to_string_lossy());
    stats.args(["stats", "--name", &name]);
    let out = vrrp_tests::netns::run(&mut stats)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let passed = text
        .lines()
        .find(|l| l.contains("verdict=unknown_vrid"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("packets=")))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(passed >= 5, "VRID 6's adverts were not counted as passed: {text}");
    Ok(())
}

//! Two agents on one interface (issue 12, case 9, the interface part): a
//! second agent, under another `--name`, for a VRID the first one serves
//! on the same interface would be a second MASTER on the same node. It is
//! refused with a clear error and a non-zero exit, whether it would fall
//! back to raw sockets (`--receive auto`) or asks for them (`--receive
//! socket`). For another VRID it may run beside the first: on raw sockets,
//! hearing its peers because the first agent's program passes adverts for
//! VRIDs it does not serve (case 12).

use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::netns;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::{Process, wait_until};

const VIP5: &str = "192.0.2.55";
const VIP6: &str = "192.0.2.66";

fn conf(vrid: u8, priority: u8, vip: &str) -> String {
    format!(
        "vrrp_instance VI_{vrid} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  \
         priority {priority}\n  advert_int 1\n  version 3\n  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n"
    )
}

/// Start an agent on node `i` that is expected to refuse to start: its
/// exit status and output, or an error if it is still running after 10 s.
fn refused(seg: &Segment, i: usize, conf: &str, extra: &[&str]) -> Result<(ExitStatus, Vec<String>)> {
    let path = seg.file(&format!("{}.conf", netns::unique("second")), conf)?;
    let bin = agent_bin()?;
    let mut cmd = seg.nodes[i].ns.command(&bin.to_string_lossy());
    cmd.arg("run").arg("-f").arg(&path).args(["--name", &netns::unique("t2")]).args(extra);
    let mut p = Process::spawn("second", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
    let mut status = None;
    let waited = wait_until(Duration::from_secs(10), || {
        status = p.try_wait()?;
        Ok(status.is_some())
    });
    match (waited, status) {
        (Ok(()), Some(s)) => Ok((s, p.lines())),
        _ => bail!("the second agent is running beside the first:\n{}", p.lines().join("\n")),
    }
}

#[test]
fn a_second_agent_for_the_same_vrid_on_the_interface_is_refused() -> Result<()> {
    if !require_root("a_second_agent_for_the_same_vrid_on_the_interface_is_refused") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let first = seg.agent(0, &conf(5, 100, VIP5), &[])?;
    seg.wait_holders(VIP5, &[0], Duration::from_secs(8))?;
    for mode in ["auto", "socket"] {
        let (status, lines) = refused(&seg, 0, &conf(5, 150, "192.0.2.56"), &["--receive", mode])
            .with_context(|| format!("--receive {mode}"))?;
        assert!(!status.success(), "--receive {mode}: exit status {status}");
        assert!(
            lines.iter().any(|l| l.contains("eth0 is taken") && l.contains("serves VRID 5 (IPv4)")),
            "--receive {mode}: no clear error: {lines:#?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("receiving on raw sockets instead")),
            "--receive {mode}: announced a fallback it must not make: {lines:#?}"
        );
        // The refused agent held nothing, and the first one is still
        // the only holder of its VIP.
        assert_eq!(seg.holders("192.0.2.56")?, Vec::<usize>::new());
        assert_eq!(seg.holders(VIP5)?, vec![0]);
    }
    drop(first);
    Ok(())
}

/// Node 1: an agent, MASTER of VRID 6 (priority 200). Node 0: an agent
/// for VRID 5 with its XDP program on eth0, and a second agent for VRID 6
/// (priority 100) on the same eth0. The second one starts (on raw
/// sockets, with a warning naming the first agent's program) and stays
/// BACKUP: it hears node 1 through the first agent's program, which passes
/// VRID 6 up. Only node 1 holds VRID 6's VIP for three
/// Master_Down_Intervals.
#[test]
fn a_second_agent_for_another_vrid_runs_beside_on_raw_sockets() -> Result<()> {
    if !require_root("a_second_agent_for_another_vrid_runs_beside_on_raw_sockets") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let _master6 = seg.agent(1, &conf(6, 200, VIP6), &[])?;
    seg.wait_holders(VIP6, &[1], Duration::from_secs(8))?;
    let _first = seg.agent(0, &conf(5, 100, VIP5), &["--receive", "xdp"])?;
    let second = seg.agent(0, &conf(6, 100, VIP6), &[])?;
    assert!(
        second
            .lines()
            .iter()
            .any(|l| l.contains("another vrrp-agent's XDP program") && l.contains("VRIDs 5")),
        "no warning about the first agent's program: {:#?}",
        second.lines()
    );
    assert!(
        second.lines().iter().any(|l| l.contains("receiving on a raw socket on eth0")),
        "{:#?}",
        second.lines()
    );
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(3 * 3610) {
        let h = seg.holders(VIP6)?;
        if h != [1] {
            bail!("after {:?}, VRID 6's VIP is held by {h:?}:\n{:#?}", start.elapsed(), second.lines());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !second.lines().iter().any(|l| l.contains("Entering MASTER STATE")),
        "the second agent became MASTER of VRID 6: {:#?}",
        second.lines()
    );
    Ok(())
}

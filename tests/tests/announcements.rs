//! keepalived's announcement settings, from a packet capture: gratuitous
//! ARPs paced by `vrrp_garp_interval`, `garp_master_repeat` of them when
//! an instance becomes MASTER and `garp_master_refresh_repeat` at each
//! `garp_master_refresh`; and `vrrp_startup_delay`.

use std::time::{Duration, Instant};

use anyhow::Result;
use vrrp_tests::capture::{Capture, is_garp, mac};
use vrrp_tests::lab::Segment;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::wait_until;

#[test]
fn gratuitous_arps_are_paced_by_vrrp_garp_interval() -> Result<()> {
    if !require_root("gratuitous_arps_are_paced_by_vrrp_garp_interval") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.49/24"])?;
    let cap = Capture::start(&seg.nodes[0].ns, "eth0")?;
    let conf = "global_defs {\n  vrrp_garp_interval 0.2\n  vrrp_garp_master_delay 0\n  vrrp_garp_master_repeat 3\n\
                  vrrp_garp_master_refresh 2\n  vrrp_garp_master_refresh_repeat 2\n  vrrp_startup_delay 1\n}\n\
                vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 66\n  priority 150\n\
                  advert_int 1\n  virtual_ipaddress {\n    192.0.2.142/24\n  }\n}\n";
    let started = Instant::now();
    let mut a = seg.agent(0, conf, &[])?;
    // `agent` returns at the first "Entering": after the startup delay.
    let entered = started.elapsed();
    eprintln!("first state entered {entered:?} after the start (vrrp_startup_delay 1)");
    assert!(entered >= Duration::from_secs(1), "vrrp_startup_delay held the instance back: {entered:?}");
    a.wait_for_line("Entering MASTER STATE", Duration::from_secs(8))?;
    let me = mac(&seg.nodes[0].ns, "eth0")?;
    let vip = [192, 0, 2, 142];
    // 3 at the transition, then 2 at the first refresh (2 s later).
    wait_until(Duration::from_secs(6), || {
        Ok(a.lines().iter().filter(|l| l.contains("Sending/queueing")).count() >= 2)
    })?;
    std::thread::sleep(Duration::from_millis(800));
    let frames = cap.stop();
    let ts: Vec<u64> = frames.iter().filter(|f| is_garp(f, me, vip)).map(|f| f.ts_ns).collect();
    let gaps: Vec<Duration> = ts.windows(2).map(|w| Duration::from_nanos(w[1] - w[0])).collect();
    eprintln!("gratuitous ARPs: {} frames, gaps {gaps:?}", ts.len());
    assert_eq!(ts.len(), 5, "3 on becoming MASTER and 2 at the refresh: gaps {gaps:?}");
    // Generous margins: the pacing is a timer of the agent's loop on a busy machine.
    for (i, g) in gaps.iter().enumerate() {
        if i == 2 {
            // From the third of the burst (0.4 s after the first) to the
            // refresh (2 s after the first).
            assert!(
                *g >= Duration::from_millis(1500) && *g <= Duration::from_millis(2100),
                "burst to refresh: {g:?}"
            );
        } else {
            assert!(
                *g >= Duration::from_millis(190) && *g <= Duration::from_millis(400),
                "gap {i} of {gaps:?} is not vrrp_garp_interval 0.2 s"
            );
        }
    }
    Ok(())
}

#[test]
fn a_master_hearing_a_lower_priority_sends_garp_lower_prio_repeat_gratuitous_arps() -> Result<()> {
    if !require_root("a_master_hearing_a_lower_priority_sends_garp_lower_prio_repeat_gratuitous_arps") {
        return Ok(());
    }
    use std::net::Ipv4Addr;
    use vrrp_tests::advert;
    let seg = Segment::new(&["192.0.2.50/24", "192.0.2.51/24"])?;
    // One gratuitous ARP on becoming MASTER, 3 when a lower priority is heard.
    let conf = "global_defs {\n  vrrp_garp_master_delay 0\n  vrrp_garp_master_repeat 1\n}\n\
                vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 67\n  priority 150\n\
                  advert_int 1\n  garp_lower_prio_repeat 3\n  garp_lower_prio_delay 0\n\
                  virtual_ipaddress {\n    192.0.2.143/24\n  }\n}\n";
    let mut a = seg.agent(0, conf, &[])?;
    a.wait_for_line("Entering MASTER STATE", Duration::from_secs(8))?;
    let me = mac(&seg.nodes[0].ns, "eth0")?;
    let vip = [192, 0, 2, 143];
    let cap = Capture::start(&seg.nodes[0].ns, "eth0")?;
    // Node 2, with no agent, claims VRID 67 at priority 50.
    let src = Ipv4Addr::new(192, 0, 2, 51);
    let low = advert::v2(67, 50, 1, &[Ipv4Addr::new(192, 0, 2, 143)], None, src, advert::VRRP_GROUP_V4)?;
    // Only what follows the advert counts (the MASTER transition's own
    // gratuitous ARP may still be on its way).
    let sent_ns =
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos())?;
    seg.nodes[1]
        .ns
        .run_in(move || advert::send(&advert::socket_v4("eth0", 255)?, &low, advert::VRRP_GROUP_V4))?;
    a.wait_for_line("with lower priority 50, ours 150", Duration::from_secs(3))?;
    std::thread::sleep(Duration::from_millis(500));
    let n = cap.stop().iter().filter(|f| f.ts_ns > sent_ns && is_garp(f, me, vip)).count();
    assert_eq!(n, 3, "garp_lower_prio_repeat 3 gratuitous ARPs after the lower-priority advert");
    Ok(())
}

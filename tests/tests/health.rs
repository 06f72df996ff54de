//! Health checks move the VIP: each node runs a small HTTP service in its
//! namespace and a check script that probes it (the reference tutorial's
//! setup: priorities 50 / 1 / 2 and `weight 100`). The priority tables of
//! the tutorial must come out exactly.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use vrrp_tests::lab::Segment;
use vrrp_tests::privilege::require_root;

const VIP: &str = "192.0.2.130";

/// An HTTP service on 127.0.0.1:8080 inside a node's namespace, answering
/// 200 until stopped (then the port is closed).
struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    fn start(seg: &Segment, node: usize) -> Result<Service> {
        let listener = seg.nodes[node].ns.run_in(|| Ok(TcpListener::bind("127.0.0.1:8080")?))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let mut buf = [0u8; 512];
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Service { stop, thread: Some(thread) })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn check_script(seg: &Segment) -> Result<PathBuf> {
    // Probes the node's own service, as the tutorial's healthcheck.sh does.
    let p = seg.file(
        "healthcheck.sh",
        "#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/8080 || exit 1\nprintf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3\nread -t 2 status <&3\n[[ $status == *' 200 '* ]]\n",
    )?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(p)
}

fn conf(priority: u8, check: &Path, notify: Option<&Path>) -> String {
    let notify = notify.map(|n| format!("  notify {}\n", n.display())).unwrap_or_default();
    format!(
        "vrrp_script check_nginx {{\n  script \"{}\"\n  interval 1\n  weight 100\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 55\n  priority {priority}\n  advert_int 1\n\
           authentication {{\n    auth_type PASS\n    auth_pass e^Ho6HWa\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n\
           track_script {{\n    check_nginx\n  }}\n{notify}}}\n",
        check.display()
    )
}

/// Each agent's (state, effective priority), from its own status file.
fn states(names: &[String]) -> Result<Vec<(String, u8)>> {
    names
        .iter()
        .map(|n| {
            let st = vrrp_agent::daemon::status::read(n)?;
            let i = st.instances.first().ok_or_else(|| anyhow::anyhow!("no instance in {n}'s status"))?;
            Ok((i.state.clone(), i.effective_priority))
        })
        .collect()
}

/// Wait until the agents report `want` and exactly `holder` holds the VIP.
fn expect_step(
    seg: &Segment,
    names: &[String],
    want: &[(&str, u8)],
    holder: usize,
    limit: Duration,
) -> Result<()> {
    let want: Vec<(String, u8)> = want.iter().map(|(s, p)| ((*s).to_owned(), *p)).collect();
    let start = std::time::Instant::now();
    loop {
        let got = states(names).unwrap_or_default();
        if got == want && seg.holders(VIP)? == [holder] {
            return Ok(());
        }
        if start.elapsed() > limit {
            anyhow::bail!(
                "wanted {want:?} with node {} holding {VIP}; agents report {got:?}, holders {:?}",
                holder + 1,
                seg.holders(VIP)?
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Master_Down_Interval at 1 s for `priority`, plus a check interval and
/// a margin for a busy machine.
fn move_limit(priority: u64) -> Duration {
    Duration::from_micros(3_000_000 + (256 - priority) * 1_000_000 / 256) + Duration::from_secs(2)
}

#[test]
fn two_nodes_the_vip_follows_the_healthy_service() -> Result<()> {
    if !require_root("two_nodes_the_vip_follows_the_healthy_service") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let check = check_script(&seg)?;
    let log = seg.file("notify.log", "")?;
    let notify = seg.file("notify.sh", &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()))?;
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755))?;
    let mut s1 = Service::start(&seg, 0)?;
    let _s2 = Service::start(&seg, 1)?;
    let (a, n1) = seg.agent_named(0, &conf(50, &check, Some(notify.as_path())), &[])?;
    let (b, n2) = seg.agent_named(1, &conf(1, &check, None), &[])?;
    let names = [n1, n2];

    // Both healthy: 150 and 101, node 1 is master.
    a.wait_for_line_once("VRRP_Script(check_nginx) succeeded", Duration::from_secs(5))?;
    a.wait_for_line_once("(VI_1) Changing effective priority from 50 to 150", Duration::from_secs(5))?;
    b.wait_for_line_once("(VI_1) Changing effective priority from 1 to 101", Duration::from_secs(5))?;
    expect_step(&seg, &names, &[("MASTER", 150), ("BACKUP", 101)], 0, move_limit(150))?;

    // Node 1's service fails: 50 against 101, node 2 takes over.
    s1.stop();
    a.wait_for_line_once("VRRP_Script(check_nginx) failed", Duration::from_secs(5))?;
    a.wait_for_line_once("(VI_1) Changing effective priority from 150 to 50", Duration::from_secs(1))?;
    expect_step(&seg, &names, &[("BACKUP", 50), ("MASTER", 101)], 1, move_limit(101))?;

    // Restored: 150 again, node 1 preempts back.
    let _s1 = Service::start(&seg, 0)?;
    expect_step(
        &seg,
        &names,
        &[("MASTER", 150), ("BACKUP", 101)],
        0,
        move_limit(150) + Duration::from_secs(1),
    )?;

    // `notify` got INSTANCE NAME STATE PRIORITY for every transition, in order.
    vrrp_tests::process::wait_until(Duration::from_secs(5), || {
        Ok(std::fs::read_to_string(&log)?.lines().count() >= 4)
    })?;
    let lines: Vec<String> = std::fs::read_to_string(&log)?.lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "INSTANCE VI_1 BACKUP 50",
            "INSTANCE VI_1 MASTER 150",
            "INSTANCE VI_1 BACKUP 50",
            "INSTANCE VI_1 MASTER 150"
        ],
        "notify calls"
    );
    Ok(())
}

#[test]
fn three_nodes_follow_the_tutorials_table() -> Result<()> {
    if !require_root("three_nodes_follow_the_tutorials_table") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24", "192.0.2.53/24"])?;
    let check = check_script(&seg)?;
    let mut services = Vec::new();
    for i in 0..3 {
        services.push(Service::start(&seg, i)?);
    }
    let mut agents = Vec::new();
    let mut names = Vec::new();
    for (i, p) in [50, 1, 2].into_iter().enumerate() {
        let (a, n) = seg.agent_named(i, &conf(p, &check, None), &[])?;
        agents.push(a);
        names.push(n);
    }
    // 1. Before the first check: 50, 1, 2; node 1 is master.
    // 2. Healthy everywhere: 150, 101, 102; node 1.
    expect_step(&seg, &names, &[("MASTER", 150), ("BACKUP", 101), ("BACKUP", 102)], 0, move_limit(150))?;
    // 3. Node 1's service fails: 50, 101, 102; node 3.
    services[0].stop();
    expect_step(
        &seg,
        &names,
        &[("BACKUP", 50), ("BACKUP", 101), ("MASTER", 102)],
        2,
        move_limit(102) + Duration::from_secs(1),
    )?;
    // 4. Node 3's service fails too: 50, 101, 2; node 2.
    services[2].stop();
    expect_step(
        &seg,
        &names,
        &[("BACKUP", 50), ("MASTER", 101), ("BACKUP", 2)],
        1,
        move_limit(101) + Duration::from_secs(1),
    )?;
    for (i, a) in agents.iter().enumerate() {
        eprintln!("--- node {} log\n{}", i + 1, a.lines().join("\n"));
    }
    Ok(())
}

#[test]
fn a_tracked_interface_down_is_fault_and_up_again_is_backup() -> Result<()> {
    if !require_root("a_tracked_interface_down_is_fault_and_up_again_is_backup") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    // A second link on node 1 to track: a veth pair inside its namespace.
    let ns = &seg.nodes[0].ns;
    ns.ip(&["link", "add", "trk0", "type", "veth", "peer", "name", "trk1"])?;
    ns.ip(&["link", "set", "trk0", "up"])?;
    ns.ip(&["link", "set", "trk1", "up"])?;
    let conf = |priority: u8, track: bool| {
        let track = if track { "  track_interface {\n    trk0\n  }\n" } else { "" };
        format!(
            "vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 55\n  priority {priority}\n  advert_int 1\n{track}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
        )
    };
    let a = seg.agent(0, &conf(150, true), &[])?;
    let _b = seg.agent(1, &conf(100, false), &[])?;
    seg.wait_holders(VIP, &[0], move_limit(150))?;

    ns.ip(&["link", "set", "trk0", "down"])?;
    a.wait_for_line_once("Netlink reports trk0 down", Duration::from_secs(2))?;
    a.wait_for_line_once("(VI_1) Entering FAULT STATE", Duration::from_secs(2))?;
    // FAULT resigns with priority 0: node 2 takes over after its Skew_Time.
    seg.wait_holders(VIP, &[1], Duration::from_millis(610) + Duration::from_secs(1))?;

    ns.ip(&["link", "set", "trk0", "up"])?;
    a.wait_for_line_once("Netlink reports trk0 up", Duration::from_secs(2))?;
    a.wait_for_line_once("(VI_1) Entering BACKUP STATE", Duration::from_secs(2))?;
    // Back in the election with the higher priority: it preempts.
    seg.wait_holders(VIP, &[0], move_limit(150))?;
    Ok(())
}

#[test]
fn the_masters_own_link_down_is_fault_and_up_again_is_backup() -> Result<()> {
    if !require_root("the_masters_own_link_down_is_fault_and_up_again_is_backup") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let conf = |priority: u8| {
        format!(
            "vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 55\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
        )
    };
    let (a, n1) = seg.agent_named(0, &conf(150), &[])?;
    let (_b, n2) = seg.agent_named(1, &conf(100), &[])?;
    let names = [n1, n2];
    expect_step(&seg, &names, &[("MASTER", 150), ("BACKUP", 100)], 0, move_limit(150))?;
    let ns = &seg.nodes[0].ns;
    ns.ip(&["link", "set", "eth0", "down"])?;
    a.wait_for_line_once("Netlink reports eth0 down", Duration::from_secs(2))?;
    // Its priority-0 advert cannot leave a down link: node 2 takes over
    // when its Master_Down_Interval runs out.
    expect_step(&seg, &names, &[("FAULT", 150), ("MASTER", 100)], 1, move_limit(100))?;
    ns.ip(&["link", "set", "eth0", "up"])?;
    a.wait_for_line_once("Netlink reports eth0 up", Duration::from_secs(5))?;
    expect_step(
        &seg,
        &names,
        &[("MASTER", 150), ("BACKUP", 100)],
        0,
        move_limit(150) + Duration::from_secs(2),
    )?;
    Ok(())
}

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
    let a = seg.agent(0, &conf(50, &check, Some(notify.as_path())), &[])?;
    let b = seg.agent(1, &conf(1, &check, None), &[])?;

    // 1-2: healthy everywhere: 150 and 101, node 1 is master.
    a.wait_for_line_once("VRRP_Script(check_nginx) succeeded", Duration::from_secs(5))?;
    a.wait_for_line_once("(VI_1) Changing effective priority from 50 to 150", Duration::from_secs(5))?;
    b.wait_for_line_once("(VI_1) Changing effective priority from 1 to 101", Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[0], move_limit(150))?;
    vrrp_tests::process::wait_until(Duration::from_secs(5), || {
        Ok(std::fs::read_to_string(&log)?.contains("INSTANCE VI_1 MASTER 150"))
    })?;

    // 3: node 1's service fails: 50 against 101, node 2 takes over.
    s1.stop();
    a.wait_for_line_once("VRRP_Script(check_nginx) failed", Duration::from_secs(5))?;
    a.wait_for_line_once("(VI_1) Changing effective priority from 150 to 50", Duration::from_secs(1))?;
    seg.wait_holders(VIP, &[1], move_limit(101))?;
    vrrp_tests::process::wait_until(Duration::from_secs(5), || {
        Ok(std::fs::read_to_string(&log)?.contains("INSTANCE VI_1 BACKUP 50"))
    })?;
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
    let a = seg.agent(0, &conf(50, &check, None), &[])?;
    let b = seg.agent(1, &conf(1, &check, None), &[])?;
    let c = seg.agent(2, &conf(2, &check, None), &[])?;
    // 2: 150, 101, 102: node 1.
    for (agent, line) in [(&a, "from 50 to 150"), (&b, "from 1 to 101"), (&c, "from 2 to 102")] {
        agent.wait_for_line_once(
            &format!("(VI_1) Changing effective priority {line}"),
            Duration::from_secs(5),
        )?;
    }
    seg.wait_holders(VIP, &[0], move_limit(150))?;
    // 3: node 1 fails: 50, 101, 102: node 3.
    services[0].stop();
    seg.wait_holders(VIP, &[2], move_limit(102))?;
    // 4: node 3 fails too: 50, 101, 2: node 2.
    services[2].stop();
    seg.wait_holders(VIP, &[1], move_limit(101))?;
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

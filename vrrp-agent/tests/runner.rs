//! Check scripts: exit status is the verdict; an overrunning script and its
//! whole process group are killed and count as a failure; a hanging script
//! does not hold up another one.

use std::time::{Duration, Instant};

use vrrp_agent::health::runner::{self, CheckSpec};

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// Whether a process whose command line contains `marker` is alive.
fn alive(marker: &str) -> bool {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
    })
}

#[tokio::test]
async fn exit_status_is_the_verdict() {
    assert!(runner::run_once(&sh("exit 0"), None, Duration::from_secs(5)).await);
    assert!(!runner::run_once(&sh("exit 3"), None, Duration::from_secs(5)).await);
    assert!(!runner::run_once(&["/nonexistent/check".into()], None, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn an_overrun_kills_the_process_group_and_fails() {
    let marker = format!("vrrp-hang-{}", std::process::id());
    // The child of the shell is in the same process group and must die too.
    let script = format!("sleep 300 & exec -a {marker} sleep 300");
    let start = Instant::now();
    let ok = runner::run_once(&sh(&script), None, Duration::from_millis(300)).await;
    assert!(!ok, "a timeout is a failure");
    assert!(start.elapsed() < Duration::from_secs(3), "SIGTERM ends it: {:?}", start.elapsed());
    // Give the kernel a moment to reap, by condition.
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(&marker) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alive(&marker), "the script's process group is gone");
}

#[tokio::test]
async fn a_hanging_script_does_not_stall_another() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let hang = CheckSpec {
        index: 0,
        argv: sh("sleep 30"),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
        run_as: None,
    };
    let quick = CheckSpec {
        index: 1,
        argv: sh("exit 0"),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        run_as: None,
    };
    let h = runner::spawn_check(hang, tx.clone());
    let q = runner::spawn_check(quick, tx);
    let mut quick_results = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while quick_results < 5 {
        let r =
            tokio::time::timeout_at(deadline, rx.recv()).await.expect("results keep coming").expect("open");
        assert_eq!(r, (1, true), "only the quick script reports while the other hangs");
        quick_results += 1;
    }
    h.abort();
    q.abort();
}

//! keepalived 2.2.7's own `doc/samples` that use VRRP (all twelve, in
//! tests/fixtures/keepalived-samples/, addresses rewritten as each file's
//! header says): each loads with no error and no warning about a keyword
//! that changes failover or routing, and none is taken for a misspelling
//! where keepalived knows the word. Warnings that remain are about what
//! the sample itself gets wrong in keepalived too (`lvs_syncd`'s group
//! without `group { }`, which keepalived reports as unknown keywords and
//! drops), or side features (mail, LVS).
//!
//! `load` reads the file's meaning; what the running system lacks (the
//! samples' scripts under /usr/local/bin, eth1, ...) is `check-config`'s
//! business and is tested with the samples that are run in namespaces.

use std::path::PathBuf;

use vrrp_agent::config;

const SAMPLES: &[&str] = &[
    "keepalived.conf.SSL_GET",
    "keepalived.conf.conditional_conf",
    "keepalived.conf.sample",
    "keepalived.conf.track_interface",
    "keepalived.conf.vrrp",
    "keepalived.conf.vrrp.localcheck",
    "keepalived.conf.vrrp.lvs_syncd",
    "keepalived.conf.vrrp.routes",
    "keepalived.conf.vrrp.rules",
    "keepalived.conf.vrrp.scripts",
    "keepalived.conf.vrrp.static_ipaddress",
    "keepalived.conf.vrrp.sync",
];

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keepalived-samples").join(name)
}

#[test]
fn keepalived_s_vrrp_samples_load_without_a_behaviour_changing_warning() {
    // The conditional sample is written for `-i high` or `-i low`.
    config::preproc::set_config_id("high".into());
    let mut failed = Vec::new();
    for name in SAMPLES {
        match config::load(&sample(name)) {
            Err(e) => failed.push(format!("{name}: refused:\n{e}")),
            Ok((cfg, warnings)) => {
                if cfg.instances.is_empty() {
                    failed.push(format!("{name}: no instance"));
                }
                for w in warnings.iter().map(ToString::to_string) {
                    if w.contains("changes behaviour")
                        || (w.contains("spelling") && !name.ends_with("lvs_syncd"))
                    {
                        failed.push(format!("{name}: {w}"));
                    }
                }
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn the_samples_mean_what_keepalived_reads_in_them() {
    config::preproc::set_config_id("high".into());
    let load = |n: &str| config::load(&sample(n)).map(|(c, _)| c).unwrap_or_else(|e| panic!("{n}: {e}"));
    // `@high priority 170`, `@high net_namespace high`.
    let c = load("keepalived.conf.conditional_conf");
    assert_eq!((c.instances[0].priority, c.global.net_namespace.as_deref()), (170, Some("high")));
    assert!(c.instances[0].vmac.is_some(), "use_vmac");
    // IPsec-AH authentication.
    let c = load("keepalived.conf.SSL_GET");
    assert!(matches!(c.instances[0].auth, Some(config::model::AuthConf::Ah(_))));
    // A sync group of the scripts sample, with its notify scripts.
    let c = load("keepalived.conf.vrrp.scripts");
    assert_eq!(c.sync_groups.len(), 1);
    assert!(c.sync_groups[0].notify.master.is_some());
    // keepalived drops lvs_syncd's group (its members are not in a
    // `group { }` block): the instances run on their own.
    let c = load("keepalived.conf.vrrp.lvs_syncd");
    assert!(c.sync_groups.is_empty());
    assert_eq!(c.instances.len(), 3);
    // track_interface's virtual routes.
    let c = load("keepalived.conf.track_interface");
    assert_eq!((c.instances[0].routes.len(), c.static_routes.len()), (3, 4));
}

/// `check-config` itself (the same check as `run`) accepts every sample
/// but one, with the scripts the samples name standing in a temporary
/// directory (they do not exist on a test machine; a missing script is
/// refused, see config_check.rs): no warning but about this machine
/// (interfaces absent, the default script user), LVS and mail, and the
/// empty group keepalived removes too. The exception is the localcheck
/// sample, whose `script "</dev/tcp/127.0.0.1/80"` is a shell redirection,
/// not a program: keepalived 2.2.7 disables such a script (the sample's
/// own comment says to write `bash -c '...'`); vrrp-agent refuses it,
/// naming it.
#[test]
fn check_config_accepts_the_samples_with_their_scripts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("vrrp-samples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for s in ["vrrp.back", "vrrp.mast", "vrrp.fault", "vrrp.sh", "check_high_VI_0.sh", "check_low_VI_0.sh"] {
        let f = dir.join(s);
        std::fs::write(&f, "#!/bin/sh\nexit 0\n").expect("script");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let allowed = [
        "does not exist (yet)",
        "default user",
        "SECURITY VIOLATION",
        "is not supported by vrrp-agent\n",
        "`smtp_alert` is not supported",
        "`virtual_server` is not supported",
        "`notification_email",
        "`smtp_",
        "accepted; it has no effect",
        "unknown vrrp_sync_group keyword `VI_",
        "Sync group VG1 has no virtual router(s). removing",
        "listed twice; kept once",
        "rule has no preference",
        "Initial state master is incompatible with AH",
    ];
    let mut failed = Vec::new();
    for name in SAMPLES {
        let text = std::fs::read_to_string(sample(name)).expect("the sample");
        let p = dir.join(name);
        let text = text
            .replace("/usr/local/bin/", &format!("{}/", dir.display()))
            .replace("/etc/keepalived/scripts/", &format!("{}/", dir.display()));
        std::fs::write(&p, text).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vrrp-agent"))
            .args(["--config-id", "high", "check-config", "-f"])
            .arg(&p)
            .output()
            .expect("running check-config");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if name.ends_with("localcheck") {
            if out.status.success() || !stderr.contains("`</dev/tcp/127.0.0.1/80` not found") {
                failed.push(format!("{name}: the shell redirection is not refused by name:\n{stderr}"));
            }
            continue;
        }
        if !out.status.success() {
            failed.push(format!("{name}: refused:\n{stderr}"));
        }
        // Diagnostics are two lines (message, hint): judge the message.
        for line in stderr.lines().filter(|l| l.contains("warning:")) {
            let line = format!("{line}\n");
            if !allowed.iter().any(|a| line.contains(a)) {
                failed.push(format!("{name}: {line}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

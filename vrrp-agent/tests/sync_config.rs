//! `vrrp_sync_group` in keepalived.conf: members, tracking applied to
//! every member, keepalived's checks (errors with file:line:column and a
//! hint, warnings for what keepalived warns about or we do not do).

use std::path::PathBuf;

use vrrp_agent::config::{self, ConfigError, Severity};

fn write(text: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vrrp-sync-conf-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join("k.conf");
    std::fs::write(&p, text).expect("write");
    p
}

/// Load `text`: Ok(config, warnings as text) or Err(errors as text), with
/// the temporary directory taken out of the locations.
fn load(text: &str) -> Result<(config::Config, Vec<String>), Vec<String>> {
    let p = write(text);
    let dir = p.parent().expect("dir").display().to_string();
    let strip = |d: &config::Diag| d.to_string().replace(&dir, "");
    let out = match config::load(&p) {
        Ok((cfg, w)) => Ok((cfg, w.iter().map(strip).collect())),
        Err(ConfigError::Invalid { diags }) => {
            Err(diags.iter().filter(|d| d.severity == Severity::Error).map(strip).collect())
        }
        Err(e) => Err(vec![e.to_string()]),
    };
    let _ = std::fs::remove_dir_all(p.parent().expect("dir"));
    out
}

fn inst(name: &str, vrid: u8, iface: &str, extra: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n  interface {iface}\n  virtual_router_id {vrid}\n  priority 100\n{extra}  virtual_ipaddress {{\n    192.0.2.{vrid}/24\n  }}\n}}\n"
    )
}

const SCRIPTS: &str =
    "vrrp_script chk_up {\n  script /bin/true\n}\nvrrp_script chk_w {\n  script /bin/true\n  weight 20\n}\n";

#[test]
fn a_group_of_instances_on_two_interfaces_with_its_notify_scripts() {
    let text = format!(
        "vrrp_sync_group G1 {{\n  group {{\n    VI_1\n    VI_2\n  }}\n  notify_master \"/bin/echo master\"\n  notify /bin/echo\n}}\n{}{}",
        inst("VI_1", 1, "eth0", ""),
        inst("VI_2", 2, "eth1", "")
    );
    let (cfg, w) = load(&text).expect("loads");
    assert!(w.is_empty(), "{w:#?}");
    let g = &cfg.sync_groups[0];
    assert_eq!((g.name.as_str(), g.members.as_slice()), ("G1", &["VI_1".to_owned(), "VI_2".to_owned()][..]));
    assert_eq!(g.notify.master.as_deref(), Some("/bin/echo master"));
    assert_eq!(g.notify.any.as_deref(), Some("/bin/echo"));
    assert!(g.loc.to_string().ends_with("k.conf:1:1"), "{}", g.loc);
}

#[test]
fn keepalived_s_refusals_point_at_the_member() {
    // A member that does not exist, one already in another group, a group
    // with no members, a second group of the same name.
    let text = format!(
        "vrrp_sync_group G1 {{\n  group {{\n    VI_1\n    VI_9\n  }}\n}}\nvrrp_sync_group G2 {{\n  group {{\n    VI_1\n    VI_2\n  }}\n}}\nvrrp_sync_group G3 {{\n}}\nvrrp_sync_group G1 {{\n  group {{\n    VI_2\n  }}\n}}\n{}{}",
        inst("VI_1", 1, "eth0", ""),
        inst("VI_2", 2, "eth1", "")
    );
    let errors = load(&text).expect_err("refused");
    let has = |s: &str| errors.iter().any(|e| e.contains(s));
    assert!(
        has("k.conf:4:5: error: Virtual router VI_9 specified in sync group G1 doesn't exist"),
        "{errors:#?}"
    );
    assert!(
        has("k.conf:9:5: error: Virtual router VI_1 cannot exist in more than one sync group (it is in G1)"),
        "{errors:#?}"
    );
    // keepalived removes an empty group and runs on: a warning, not a
    // refusal (keepalived_samples.rs loads its lvs_syncd sample, which has one).
    assert!(!has("Sync group G3"), "{errors:#?}");
    assert!(has("k.conf:15:1: error: vrrp sync group G1 already defined"), "{errors:#?}");
    assert!(errors.iter().all(|e| e.contains("hint: ")), "{errors:#?}");
}

#[test]
fn keepalived_s_warnings_and_what_we_do_not_do() {
    let text = format!(
        "global_defs {{\n  smtp_server 192.0.2.99\n}}\nvrrp_sync_group G1 {{\n  group {{\n    VI_1\n  }}\n  track_file {{\n    f1\n  }}\n  smtp_alert\n  global_tracking\n}}\n{}vrrp_track_file f1 {{\n  file /nonexistent/f1\n}}\n",
        inst("VI_1", 1, "eth0", "")
    );
    let (cfg, w) = load(&text).expect("loads with warnings");
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(
        has(
            "k.conf:4:1: warning: Sync group G1 has only 1 virtual router(s) - this probably isn't what you want"
        ),
        "{w:#?}"
    );
    // The group's track_file applies to every member, as keepalived's
    // sync_group_tracking_init does.
    assert_eq!(cfg.instances[0].track_file.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["f1"]);
    assert!(has("k.conf:11:3: warning: `smtp_alert` is not supported by vrrp-agent"), "{w:#?}");
    assert!(has("k.conf:12:3: warning: (G1) global_tracking is deprecated"), "{w:#?}");
    assert!(cfg.sync_groups[0].tracking_weight, "global_tracking keeps the members' weights");
    // keepalived's `SCRIPT USER`: the user is not supported, and says so.
    let user = format!(
        "vrrp_sync_group G1 {{\n  group {{\n    VI_1\n    VI_2\n  }}\n  notify_fault /bin/true nobody\n}}\n{}{}",
        inst("VI_1", 1, "eth0", ""),
        inst("VI_2", 2, "eth1", "")
    );
    let (_, w) = load(&user).expect("loads");
    assert!(
        w.iter().any(|x| x.contains(
            "k.conf:6:26: warning: `notify_fault ... nobody`: running a notify script as its own user is not supported"
        )),
        "{w:#?}"
    );
    // Without a mail server, smtp_alert loses nothing: no warning.
    let quiet = format!(
        "vrrp_sync_group G1 {{\n  group {{\n    VI_1\n    VI_2\n  }}\n  smtp_alert\n}}\n{}{}",
        inst("VI_1", 1, "eth0", ""),
        inst("VI_2", 2, "eth1", "")
    );
    let (_, w) = load(&quiet).expect("loads");
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn the_group_s_tracking_applies_to_every_member_and_members_lose_their_weights() {
    // VI_1 tracks a weighted script (dropped: members of a group must not
    // get different priorities) and a weighted interface (made
    // unweighted); the group's own tracking is added to both members.
    let text = format!(
        "{SCRIPTS}vrrp_sync_group G1 {{\n  group {{\n    VI_1\n    VI_2\n  }}\n  track_script {{\n    chk_up\n  }}\n  track_interface {{\n    eth9\n  }}\n}}\n{}{}",
        inst(
            "VI_1",
            1,
            "eth0",
            "  track_script {\n    chk_w\n  }\n  track_interface {\n    eth7 weight 10\n  }\n"
        ),
        inst("VI_2", 2, "eth1", "")
    );
    let (cfg, w) = load(&text).expect("loads");
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(has("(VI_1) ignoring tracked script chk_w with weights due to SYNC group"), "{w:#?}");
    assert!(has("(VI_1) ignoring eth7 tracked interface weight due to SYNC group"), "{w:#?}");
    for i in &cfg.instances {
        let scripts: Vec<&str> = i.track_script.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(scripts, ["chk_up"], "{}", i.name);
        assert!(
            i.track_interface.iter().any(|t| t.name == "eth9" && t.weight.unwrap_or(0) == 0),
            "{}",
            i.name
        );
    }
    let vi1 = &cfg.instances[0];
    assert_eq!(vi1.track_interface.iter().find(|t| t.name == "eth7").and_then(|t| t.weight), Some(0));

    // sync_group_tracking_weight keeps them.
    let kept = text.replace(
        "  track_script {\n    chk_up",
        "  sync_group_tracking_weight\n  track_script {\n    chk_up",
    );
    let (cfg, w) = load(&kept).expect("loads");
    assert!(!w.iter().any(|x| x.contains("due to SYNC group")), "{w:#?}");
    let scripts: Vec<&str> = cfg.instances[0].track_script.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(scripts, ["chk_w", "chk_up"]);

    // A group's script must exist.
    let missing = text.replace("    chk_up\n  }\n  track_interface", "    chk_nope\n  }\n  track_interface");
    let errors = load(&missing).expect_err("refused");
    assert!(errors.iter().any(|e| e.contains("sync group G1 tracks script `chk_nope`")), "{errors:#?}");
}

/// keepalived's sample `keepalived.conf.vrrp.sync` (addresses rewritten to
/// the documentation ranges), with its notify scripts pointed at ones
/// that exist.
#[test]
fn keepalived_s_sync_sample_is_accepted_without_a_behaviour_changing_warning() {
    use std::os::unix::fs::PermissionsExt;
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/keepalived-samples/keepalived.conf.vrrp.sync");
    let text = std::fs::read_to_string(&sample).expect("the sample");
    let p = write("");
    let dir = p.parent().expect("dir").to_path_buf();
    for s in ["vrrp.back", "vrrp.mast", "vrrp.fault"] {
        let f = dir.join(s);
        std::fs::write(&f, "#!/bin/sh\nexit 0\n").expect("script");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::write(&p, text.replace("/usr/local/bin/", &format!("{}/", dir.display()))).expect("write");
    // The command itself: it exits 0 and lists the groups.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vrrp-agent"))
        .args(["check-config", "-f"])
        .arg(&p)
        .output()
        .expect("running check-config");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "check-config refused the sample:\n{stderr}");
    assert!(stdout.contains("9 instance(s)"), "{stdout}");
    assert!(stdout.contains("sync group G1: VI_1, VI_2, VI_5, VI_6, VI_7, VI_8, VI_9"), "{stdout}");
    assert!(stdout.contains("sync group G2: VI_3, VI_4"), "{stdout}");
    for line in stderr.lines().filter(|l| l.contains("warning:")) {
        assert!(line.contains("does not exist (yet)") || line.contains("default user"), "unexpected: {line}");
    }
    let (cfg, warnings) = config::check(&p).unwrap_or_else(|e| panic!("the sample is refused: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    // The only warnings allowed are about this machine (eth0 / eth1 absent,
    // the default script user), never about a keyword.
    for w in &warnings {
        let w = w.to_string();
        assert!(w.contains("does not exist (yet)") || w.contains("default user"), "unexpected warning: {w}");
    }
    let groups: Vec<(&str, Vec<&str>)> = cfg
        .sync_groups
        .iter()
        .map(|g| (g.name.as_str(), g.members.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        groups,
        [("G1", vec!["VI_1", "VI_2", "VI_5", "VI_6", "VI_7", "VI_8", "VI_9"]), ("G2", vec!["VI_3", "VI_4"])]
    );
    assert_eq!(cfg.instances.len(), 9);
    assert!(cfg.sync_groups[0].notify.master.as_deref().is_some_and(|m| m.ends_with("vrrp.mast arg1 arg2")));
}

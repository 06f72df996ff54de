//! What `check-config` and `run` both refuse or adjust (config::check):
//! issue 12 cases 5 (VIPs beyond an advert's room), 8 (a missing script
//! user), 11 (empty file, missing script / user / include, interfaces that
//! do not exist yet, non-UTF-8 bytes, oversized and hostile files).

use std::path::PathBuf;

use vrrp_agent::config::{self, ConfigError, Diag, Severity, system};
use vrrp_common::wire::{Family, Version};

/// Write `files` into a fresh directory; returns the directory.
fn tree(files: &[(&str, &[u8])]) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vrrp-check-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
    dir
}

/// config::check of one file: Ok(warnings) or Err(diagnostics), as
/// strings with the directory removed, and the configuration.
fn check(text: &[u8]) -> (Result<Vec<String>, Vec<String>>, Option<config::Config>) {
    let dir = tree(&[("k.conf", text)]);
    let strip = |d: &Diag| d.to_string().replace(&format!("{}/", dir.display()), "");
    let out = match config::check(&dir.join("k.conf")) {
        Ok((cfg, w)) => (Ok(w.iter().map(strip).collect()), Some(cfg)),
        Err(ConfigError::Invalid { diags }) => {
            (Err(diags.iter().filter(|d| d.severity == Severity::Error).map(strip).collect()), None)
        }
        Err(e) => (Err(vec![e.to_string().replace(&format!("{}/", dir.display()), "")]), None),
    };
    let _ = std::fs::remove_dir_all(dir);
    out
}

fn errors(text: &str) -> Vec<String> {
    match check(text.as_bytes()).0 {
        Ok(w) => panic!("accepted, with warnings {w:#?}"),
        Err(e) => e,
    }
}

fn instance(name: &str, vrid: u8, body: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n  interface lo\n  virtual_router_id {vrid}\n  virtual_ipaddress {{\n    192.0.2.130/24\n  }}\n{body}}}\n"
    )
}

const MISSING_USER: &str = "vrrp_agent_no_such_user";

#[test]
fn an_empty_file_is_refused() {
    assert_eq!(
        errors(""),
        [
            "k.conf:1:1: error: no vrrp_instance in this configuration\n  hint: define at least one `vrrp_instance NAME { ... }`; vrrp-agent runs VRRP instances only"
        ]
    );
    let only_globals = errors("global_defs {\n  router_id x\n}\n");
    assert!(only_globals[0].starts_with("k.conf:1:1: error: no vrrp_instance"), "{only_globals:?}");
}

#[test]
fn a_missing_global_script_user_refuses_scripts_and_notifies() {
    let text = format!(
        "global_defs {{\n  script_user {MISSING_USER}\n}}\n{}",
        instance("VI_1", 5, "  notify_master /bin/true\n")
    );
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.starts_with(&format!(
            "k.conf:2:3: error: script_user: script user '{MISSING_USER}' does not exist"
        ))),
        "{errs:#?}"
    );
    // The same without any script: still refused, as keepalived's
    // report_config_error for it is.
    let errs =
        errors(&format!("global_defs {{\n  script_user {MISSING_USER}\n}}\n{}", instance("VI_1", 5, "")));
    assert!(errs[0].contains("script_user"), "{errs:#?}");
}

#[test]
fn a_missing_script_user_group_or_program_is_refused() {
    let scripted = |script: &str| {
        format!("vrrp_script chk {{\n{script}}}\n{}", instance("VI_1", 5, "  track_script {\n    chk\n  }\n"))
    };
    let errs = errors(&scripted(&format!("  script /bin/true\n  user {MISSING_USER}\n")));
    assert!(
        errs.iter().any(|e| e.starts_with(&format!(
            "k.conf:3:3: error: vrrp_script chk: script user '{MISSING_USER}' does not exist"
        ))),
        "{errs:#?}"
    );
    let errs = errors(&scripted("  script /bin/true\n  user root vrrp_agent_no_such_group\n"));
    assert!(
        errs.iter().any(|e| e.contains("script group 'vrrp_agent_no_such_group' does not exist")),
        "{errs:#?}"
    );
    let errs = errors(&scripted("  script \"/nonexistent/check.sh arg\"\n"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("k.conf:1:1: error: vrrp_script chk: `/nonexistent/check.sh` not found")),
        "{errs:#?}"
    );
    let errs = errors(&scripted("  script vrrp_agent_no_such_program\n"));
    assert!(errs.iter().any(|e| e.contains("`vrrp_agent_no_such_program` not found")), "{errs:#?}");
    // Found through PATH, as execvp finds it.
    let (ok, _) = check(scripted("  script \"true\"\n").as_bytes());
    assert!(ok.is_ok(), "{ok:?}");
    let errs = errors(&instance("VI_1", 5, "  notify_backup \"/nonexistent/notify.sh\"\n"));
    assert!(
        errs.iter().any(|e| e.starts_with(
            "k.conf:7:3: error: instance VI_1: notify_backup: `/nonexistent/notify.sh` not found"
        )),
        "{errs:#?}"
    );
}

#[test]
fn with_script_security_a_missing_default_user_is_refused() {
    if nix::unistd::User::from_name(vrrp_agent::health::user::DEFAULT_SCRIPT_USER).ok().flatten().is_some() {
        eprintln!("keepalived_script exists here: the fallback cannot be tested");
        return;
    }
    let text = format!(
        "global_defs {{\n  enable_script_security\n}}\nvrrp_script chk {{\n  script /bin/true\n}}\n{}",
        instance("VI_1", 5, "  track_script {\n    chk\n  }\n")
    );
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("forbids running scripts as root")), "{errs:#?}");
    // Without it: root, with keepalived's warning.
    let (w, _) = check(text.replace("  enable_script_security\n", "").as_bytes());
    let w = w.expect("accepted");
    assert!(
        w.iter().any(|w| w.contains("'keepalived_script' for script execution does not exist")),
        "{w:#?}"
    );
}

#[test]
fn the_runtime_never_falls_back_to_root_for_a_named_user() {
    use vrrp_agent::health::user::resolve;
    let named = (MISSING_USER.to_owned(), None);
    assert!(resolve(None, Some(&named), false).is_err());
    assert!(resolve(Some(&named), None, false).is_err());
    let root = ("root".to_owned(), None);
    let r = resolve(None, Some(&root), false).expect("root exists").expect("named");
    assert_eq!(r.uid.as_raw(), 0);
}

#[test]
fn a_missing_include_is_refused_where_it_is_written() {
    // `includem`: keepalived's include that requires its file (a plain
    // `include` goes on without it, as keepalived's does: see
    // keepalived_syntax.rs).
    let errs = errors(&format!("{}includem other/instances.conf\n", instance("VI_1", 5, "")));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("k.conf:8:1: error: included file `other/instances.conf` does not exist")),
        "{errs:#?}"
    );
    // A pattern that matches nothing is keepalived's log line: a warning.
    let (w, _) = check(format!("{}include conf.d/*.conf\n", instance("VI_1", 5, "")).as_bytes());
    let w = w.expect("accepted");
    assert!(
        w.iter().any(|w| w.starts_with("k.conf:8:1: warning: no configuration file matches `conf.d/*.conf`")),
        "{w:#?}"
    );
    let errs = errors(&format!("{}includer /dev/zero\n", instance("VI_1", 5, "")));
    assert!(
        errs.iter().any(|e| e.starts_with("k.conf:8:1: error: /dev/zero is not a regular file")),
        "{errs:#?}"
    );
}

#[test]
fn a_missing_interface_is_a_warning_saying_what_happens() {
    let text = instance("VI_1", 5, "  track_interface {\n    vrrp_no_such_if1\n  }\n")
        .replace("interface lo", "interface vrrp_no_such_if0");
    let (w, cfg) = check(text.as_bytes());
    let w = w.expect("accepted with a warning");
    assert!(
        w.iter().any(|w| w.starts_with(
            "k.conf:1:1: warning: instance VI_1: interface `vrrp_no_such_if0` does not exist (yet)\n  hint: the instance starts in FAULT and leaves it when the interface appears"
        )),
        "{w:#?}"
    );
    assert!(
        w.iter().any(|w| w.contains("tracked interface `vrrp_no_such_if1` does not exist (yet)")),
        "{w:#?}"
    );
    assert_eq!(cfg.expect("config").instances.len(), 1);
}

#[test]
fn latin1_in_comments_is_accepted_and_elsewhere_located() {
    let mut text = b"# Konfiguration f\xfcr den Router\n".to_vec();
    text.extend_from_slice(
        b"vrrp_instance VI_1 { # r\xe9seau\n  interface lo\n  virtual_router_id 5\n  priority 100 ! \xe9t\xe9 \"x\n  virtual_ipaddress {\n    192.0.2.130/24\n  }\n}\n",
    );
    let (ok, cfg) = check(&text);
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(cfg.expect("config").instances[0].priority, 100);
    let mut bad = instance("VI_1", 5, "").into_bytes();
    // `  interface lo` -> `  interface l\xf6`
    let at = bad.windows(12).position(|w| w == b"interface lo").expect("there") + 11;
    bad[at] = 0xf6;
    let errs = check(&bad).0.expect_err("refused");
    assert_eq!(
        errs[0].lines().next().unwrap_or_default(),
        "k.conf:2:14: error: byte 0xf6 is not UTF-8",
        "{errs:#?}"
    );
}

#[test]
fn a_line_longer_than_keepalived_reads_is_refused_quickly() {
    // The 10 MB single-line file.
    let mut text = instance("VI_1", 5, "").into_bytes();
    text.extend(std::iter::repeat_n(b"x ".as_slice(), 5_000_000).flatten());
    let errs = check(&text).0.expect_err("refused");
    assert!(
        errs[0].starts_with("k.conf:8:1: error: line is 10000000 bytes long, more than keepalived's 1023"),
        "{errs:#?}"
    );
    let mut ok = instance("VI_1", 5, "").into_bytes();
    ok.extend(format!("# {}\n", "y".repeat(1021)).as_bytes());
    assert!(check(&ok).0.is_ok(), "1023 bytes is keepalived's longest line");
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!("{}{}", "a {\n".repeat(100), "}\n".repeat(100));
    let errs = errors(&text);
    assert!(errs[0].starts_with("k.conf:17:3: error: blocks nested more than 16 deep"), "{errs:#?}");
}

#[test]
fn diagnostics_are_capped_and_counted() {
    let mut text = instance("VI_1", 5, "");
    text.push_str(&"frobnicate\n".repeat(5000));
    let (w, _) = check(text.as_bytes());
    let w = w.expect("warnings only");
    assert_eq!(w.len(), config::model::MAX_DIAGS + 1);
    assert!(
        w[config::model::MAX_DIAGS].contains("0 more error(s) and 4000 more warning(s) not shown"),
        "{:?}",
        w.last()
    );
}

#[test]
fn duplicates_are_found_among_many_instances() {
    let mut text = String::new();
    for n in 0..5000u32 {
        text.push_str(
            &instance(&format!("VI_{n}"), (n % 255 + 1) as u8, "")
                .replace("interface lo", &format!("interface if{}", n / 255)),
        );
    }
    text.push_str(&instance("VI_4999", 77, ""));
    text.push_str(&instance("VI_dup", 5, "").replace("interface lo", "interface if0"));
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("instance VI_4999 is defined twice")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("VRID 5 on if0 is already used by VI_4")), "{errs:#?}");
}

#[test]
fn the_advert_room_is_keepalived_s() {
    assert_eq!(system::max_vips(1500, Family::V4, Version::V2), 255);
    assert_eq!(system::max_vips(1500, Family::V6, Version::V3), 89);
    assert_eq!(system::max_vips(576, Family::V4, Version::V2), 131);
    assert_eq!(system::max_vips(576, Family::V4, Version::V3), 133);
    assert_eq!(system::max_vips(40, Family::V4, Version::V3), 0);
}

fn vips(n: usize, v6: bool) -> String {
    (0..n)
        .map(|k| {
            if v6 {
                format!("    2001:db8::{:x}/64\n", k + 1)
            } else {
                format!("    {}.{}/24\n", if k < 254 { "198.51.100" } else { "203.0.113" }, k % 254 + 1)
            }
        })
        .collect()
}

#[test]
fn vips_beyond_an_advert_move_to_the_excluded_ones_with_keepalived_s_warning() {
    let text = format!(
        "vrrp_instance VI_1 {{\n  interface vrrp_no_such_if0\n  virtual_router_id 5\n  virtual_ipaddress {{\n{}  }}\n}}\n",
        vips(300, false)
    );
    let (w, cfg) = check(text.as_bytes());
    let w = w.expect("accepted");
    assert!(
        w.iter().any(|w| w.starts_with(
            "k.conf:1:1: warning: (VI_1) Number of VIPs (300) exceeds maximum/space available in packet (max 255 addresses) - excess moved to eVIPs"
        )),
        "{w:#?}"
    );
    let i = &cfg.expect("config").instances[0];
    assert_eq!((i.vips.len(), i.vips_excluded.len()), (255, 45));
    assert_eq!(i.vips_excluded[0].addr.to_string(), "203.0.113.2", "the 256th, in file order");
    // IPv6 on the default MTU: 89.
    let text = text.replace(&vips(300, false), &vips(100, true));
    let (w, cfg) = check(text.as_bytes());
    assert!(w.expect("accepted").iter().any(|w| {
        w.contains("Number of VIPs (100) exceeds maximum/space available in packet (max 89 addresses)")
    }));
    let i = &cfg.expect("config").instances[0];
    assert_eq!((i.vips.len(), i.vips_excluded.len()), (89, 11));
}

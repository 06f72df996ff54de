//! keepalived.conf: the tutorial's files parse unchanged; bad values get
//! file:line:column and a hint; ignored keywords are reported.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrrp_agent::config::{self, ConfigError, Severity};
use vrrp_common::Centis;
use vrrp_common::wire::{Family, Version};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tutorial").join(name)
}

/// Write `files` into a fresh directory; returns the directory.
fn tree(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vrrp-conf-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(p, text).expect("write");
    }
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn errors(text: &str) -> Vec<String> {
    let dir = tree(&[("k.conf", text)]);
    let out = match config::load(&dir.join("k.conf")) {
        Err(ConfigError::Invalid { diags }) => diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.to_string().replace(&dir.display().to_string(), ""))
            .collect(),
        Ok(_) => Vec::new(),
        Err(e) => vec![e.to_string()],
    };
    let _ = std::fs::remove_dir_all(dir);
    out
}

fn instance(body: &str) -> String {
    format!("vrrp_instance VI_1 {{\n{body}\n}}\n")
}

const BASE: &str = "  interface eth0\n  virtual_router_id 55\n  virtual_ipaddress {\n    192.0.2.130/24\n  }";

#[test]
fn the_tutorial_configs_load_unchanged() {
    let (cfg, warnings) = config::load(&fixture("node1.conf")).expect("node1 loads");
    assert!(warnings.is_empty(), "{warnings:?}");
    let i = &cfg.instances[0];
    assert_eq!((i.name.as_str(), i.interface.as_str(), i.vrid, i.priority), ("VI_1", "eth0", 55, 150));
    assert_eq!((i.version, i.family, i.advert_int), (Version::V2, Family::V4, Centis(100)));
    assert_eq!(i.unicast_src_ip, Some("192.168.200.20".parse::<IpAddr>().expect("addr")));
    assert_eq!(i.unicast_peers, vec!["192.168.200.52".parse::<IpAddr>().expect("addr")]);
    assert_eq!(i.auth, Some(config::model::AuthConf::Pass("e^Ho6HWa".into())));
    assert_eq!(i.vips[0].addr.to_string(), "192.168.200.130");
    assert_eq!(i.vips[0].prefix, 24);
    assert_eq!(i.state, config::model::InitialState::Master);
    let (cfg, _) = config::load(&fixture("node2.conf")).expect("node2 loads");
    assert_eq!(
        (cfg.instances[0].priority, cfg.instances[0].state),
        (100, config::model::InitialState::Backup)
    );
}

#[test]
fn bad_values_are_errors_with_file_line_column_and_hint() {
    let cases = [
        (
            "  interface eth0\n  virtual_router_id 0\n  virtual_ipaddress {\n 192.0.2.1\n }",
            "k.conf:3:21: error: `virtual_router_id 0`: expected a whole number in 1..=255",
        ),
        (
            "  interface eth0\n  virtual_router_id 256\n  virtual_ipaddress {\n 192.0.2.1\n }",
            "k.conf:3:21: error: `virtual_router_id 256`",
        ),
        (&format!("{BASE}\n  priority 0"), "k.conf:7:12: error: `priority 0`"),
        (&format!("{BASE}\n  priority 300"), "k.conf:7:12: error: `priority 300`"),
        (
            "  interface eth0\n  virtual_router_id 5\n  virtual_ipaddress {\n    192.0.2.300/24\n  }",
            "k.conf:5:5: error: `192.0.2.300` is not an IP address",
        ),
        (
            &format!("{BASE}\n  version 3\n  authentication {{\n    auth_type PASS\n    auth_pass x\n  }}"),
            "k.conf:8:3: error: instance VI_1: authentication with version 3",
        ),
        (
            &format!("{BASE}\n  unicast_peer {{\n    2001:db8::1\n  }}"),
            "k.conf:1:1: error: instance VI_1: unicast peer 2001:db8::1 is not of the family",
        ),
        (
            &format!("{BASE}\n  version 3\n  authentication {{\n    auth_type AH\n    auth_pass x\n  }}"),
            "k.conf:8:3: error: instance VI_1: authentication with version 3",
        ),
        (
            &format!("{BASE}\n  authentication {{\n    auth_type AH\n  }}"),
            "k.conf:7:3: error: auth_type AH without auth_pass",
        ),
        (
            "  virtual_router_id 5\n  virtual_ipaddress {\n 192.0.2.1\n }",
            "k.conf:1:1: error: instance VI_1 has no `interface`",
        ),
        (&format!("{BASE}\n  state LEADER"), "k.conf:7:9: error: `state LEADER`: expected MASTER or BACKUP"),
    ];
    for (body, want) in cases {
        let errs = errors(&instance(body));
        assert!(
            errs.iter().any(|e| e.trim_start_matches('/').starts_with(want) && e.contains("\n  hint: ")),
            "want {want:?}, got {errs:#?}"
        );
    }
}

/// keepalived's `auth_type AH`: accepted with its password (cut to 8
/// bytes with a warning); an AH instance configured `state MASTER` starts
/// as BACKUP, with keepalived's words, unless it owns the addresses.
#[test]
fn auth_type_ah_as_keepalived_takes_it() {
    let load = |body: &str| {
        let dir = tree(&[("k.conf", &instance(body))]);
        let r = config::load(&dir.join("k.conf"))
            .map(|(c, w)| (c.instances[0].clone(), w.iter().map(|d| d.to_string()).collect::<Vec<_>>()));
        let _ = std::fs::remove_dir_all(dir);
        r.expect("loads")
    };
    let ah = "\n  authentication {\n    auth_type AH\n    auth_pass longer-than-8\n  }";
    let (i, w) = load(&format!("{BASE}{ah}"));
    assert_eq!(i.auth, Some(config::model::AuthConf::Ah("longer-than-8".into())));
    assert!(w.iter().any(|x| x.contains("only the first 8 are used")), "{w:#?}");
    let (i, w) = load(&format!("{BASE}\n  state MASTER{ah}"));
    assert_eq!(i.state, config::model::InitialState::Backup);
    assert!(
        w.iter()
            .any(|x| x
                .contains("(VI_1) Initial state master is incompatible with AH authentication - clearing")),
        "{w:#?}"
    );
    let (i, _) = load(&format!("{BASE}\n  state MASTER\n  priority 255{ah}"));
    assert_eq!(i.state, config::model::InitialState::Master, "the address owner starts as MASTER");
}

#[test]
fn structure_errors_point_at_the_brace() {
    let errs = errors("vrrp_instance VI_1 {\n  interface eth0\n");
    assert!(errs.iter().any(|e| e.contains("k.conf:1:1: error: this block is never closed")), "{errs:?}");
    let errs = errors("}\n");
    assert!(errs.iter().any(|e| e.contains("k.conf:1:1: error: '}' without a matching '{'")), "{errs:?}");
}

#[test]
fn unsupported_and_unknown_keywords_are_warnings_never_silent() {
    let text = format!(
        "global_defs {{\n  router_id lb1\n  max_auto_priority\n  no_such_global 1\n}}\nvirtual_server 192.0.2.1 80 {{\n  lb_algo rr\n}}\n{}",
        instance(&format!("{BASE}\n  frobnicate 3"))
    );
    let dir = tree(&[("k.conf", &text)]);
    let (cfg, warnings) = config::load(&dir.join("k.conf")).expect("loads with warnings");
    assert_eq!(cfg.global.router_id.as_deref(), Some("lb1"));
    let w: Vec<String> = warnings.iter().map(|d| d.to_string()).collect();
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(has("k.conf:3:3: warning: `max_auto_priority` accepted; it has no effect"), "{w:#?}");
    assert!(has("k.conf:4:3: warning: unknown global_defs keyword `no_such_global` ignored"), "{w:#?}");
    assert!(
        has("k.conf:6:1: warning: `virtual_server` is not supported by vrrp-agent\n  hint: LVS"),
        "{w:#?}"
    );
    assert!(has("k.conf:15:3: warning: unknown vrrp_instance keyword `frobnicate` ignored"), "{w:#?}");
    // A keyword keepalived knows is never taken for a misspelling.
    assert_eq!(w.iter().filter(|x| x.contains("spelling")).count(), 2, "{w:#?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn includes_with_globs_relative_to_the_including_file() {
    let dir = tree(&[
        ("keepalived.conf", "global_defs {\n  vrrp_version 3\n}\ninclude conf.d/*.conf\n"),
        ("conf.d/a.conf", &instance(BASE)),
        (
            "conf.d/b.conf",
            "vrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 56\n  advert_int 0.1\n  virtual_ipaddress {\n    2001:db8::1/64 dev eth0 label x\n  }\n}\n",
        ),
    ]);
    let (cfg, warnings) = config::load(&dir.join("keepalived.conf")).expect("loads");
    assert!(warnings.is_empty(), "{warnings:?}");
    let names: Vec<&str> = cfg.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["VI_1", "VI_2"]);
    assert_eq!(cfg.instances[0].version, Version::V3, "vrrp_version applies to included instances");
    let v6 = &cfg.instances[1];
    assert_eq!((v6.family, v6.advert_int, v6.vips[0].prefix), (Family::V6, Centis(10), 64));
    assert_eq!((v6.vips[0].dev.as_deref(), v6.vips[0].label.as_deref()), (Some("eth0"), Some("x")));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn v2_rounds_a_fractional_interval_up_with_a_warning() {
    let dir = tree(&[("k.conf", &instance(&format!("{BASE}\n  advert_int 0.5")))]);
    let (cfg, warnings) = config::load(&dir.join("k.conf")).expect("loads");
    assert_eq!(cfg.instances[0].advert_int, Centis(100));
    assert!(warnings.iter().any(|w| w.to_string().contains("rounded up to 1 s")), "{warnings:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tracked_scripts_must_exist() {
    let errs = errors(&instance(&format!("{BASE}\n  track_script {{\n    check_nginx\n  }}")));
    assert!(
        errs.iter().any(|e| e.contains("tracks script `check_nginx`, which no vrrp_script defines")),
        "{errs:?}"
    );
    let ok = format!(
        "vrrp_script check_nginx {{\n  script \"/usr/local/bin/healthcheck.sh\"\n  interval 2\n  weight 100\n}}\n{}",
        instance(&format!("{BASE}\n  track_script {{\n    check_nginx\n  }}"))
    );
    assert!(errors(&ok).is_empty());
}

#[test]
fn a_missing_file_says_which() {
    let e = config::load(Path::new("/nonexistent/keepalived.conf")).expect_err("fails");
    assert!(e.to_string().starts_with("/nonexistent/keepalived.conf: "), "{e}");
}

/// Load `text` (written as k.conf): the config and warnings, or the
/// errors, with the temporary directory removed from locations.
fn load(text: &str) -> Result<(config::Config, Vec<String>), Vec<String>> {
    let dir = tree(&[("k.conf", text)]);
    let strip = |d: &config::Diag| d.to_string().replace(&dir.display().to_string(), "");
    let out = match config::load(&dir.join("k.conf")) {
        Ok((cfg, w)) => Ok((cfg, w.iter().map(strip).collect())),
        Err(ConfigError::Invalid { diags }) => Err(diags.iter().map(strip).collect()),
        Err(e) => Err(vec![e.to_string()]),
    };
    let _ = std::fs::remove_dir_all(dir);
    out
}

#[test]
fn ranges_as_keepalived_reads_them() {
    // preempt_delay: keepalived's TIMER_MAX_SEC is 1000 s.
    let (cfg, _) = load(&instance(&format!("{BASE}\n  preempt_delay 1000"))).expect("1000 s");
    assert_eq!(cfg.instances[0].preempt_delay, std::time::Duration::from_secs(1000));
    let (cfg, _) = load(&instance(&format!("{BASE}\n  preempt_delay 2.5"))).expect("fraction");
    assert_eq!(cfg.instances[0].preempt_delay, std::time::Duration::from_millis(2500));
    let errs = load(&instance(&format!("{BASE}\n  preempt_delay 1001"))).expect_err("beyond 1000 s");
    assert!(errs.iter().any(|e| e.contains("k.conf:7:17: error: `preempt_delay 1001`")), "{errs:#?}");
    // Script interval and timeout in fractions (keepalived 2.3 reads them
    // to the millisecond).
    let text = format!(
        "vrrp_script chk {{\n  script /bin/true\n  interval 0.5\n  timeout 0.25\n}}\n{}",
        instance(&format!("{BASE}\n  track_script {{\n    chk\n  }}"))
    );
    let (cfg, _) = load(&text).expect("fractional script timers");
    assert_eq!(cfg.scripts[0].interval, std::time::Duration::from_millis(500));
    assert_eq!(cfg.scripts[0].timeout, Some(std::time::Duration::from_millis(250)));
}

#[test]
fn virtual_addresses_as_keepalived_takes_them() {
    // An address of the other family is dropped with keepalived's words.
    let text = instance(
        "  interface eth0\n  virtual_router_id 5\n  virtual_ipaddress {\n    192.0.2.1/24\n    2001:db8::1/64\n    192.0.2.1/24\n    192.0.2.2/24\n  }",
    );
    let (cfg, w) = load(&text).expect("accepted with warnings");
    let vips: Vec<String> = cfg.instances[0].vips.iter().map(|v| v.addr.to_string()).collect();
    assert_eq!(vips, ["192.0.2.1", "192.0.2.2"]);
    assert!(
        w.iter().any(|w| w.contains(
            "k.conf:6:5: warning: (VI_1): address family must match VRRP instance [2001:db8::1] - ignoring"
        )),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|w| w
                .contains("k.conf:7:5: warning: instance VI_1: virtual address 192.0.2.1 is listed twice")),
        "{w:#?}"
    );
    // No VIP: VRRPv2 runs with keepalived's warning, VRRPv3 is refused as
    // keepalived refuses it.
    let (cfg, w) = load(&instance("  interface eth0\n  virtual_router_id 5\n  notify_master /bin/true"))
        .expect("v2 runs");
    assert!(cfg.instances[0].vips.is_empty());
    assert!(w.iter().any(|w| w.contains("(VI_1) No VIP specified; at least one is sensible")), "{w:#?}");
    let errs =
        load(&instance("  interface eth0\n  virtual_router_id 5\n  version 3")).expect_err("v3 refused");
    assert!(
        errs.iter().any(|e| e.contains("(VI_1) No VIP specified; at least one is required")),
        "{errs:#?}"
    );
}

fn load_text(text: &str) -> (config::Config, Vec<String>) {
    let dir = tree(&[("k.conf", text)]);
    let (cfg, w) = config::load(&dir.join("k.conf")).expect("loads");
    let _ = std::fs::remove_dir_all(dir);
    (cfg, w.iter().map(|d| d.to_string()).collect())
}

#[test]
fn accept_mode_defaults_as_keepalived() {
    // Not strict: accept unless no_accept.
    let (cfg, _) = load_text(&instance(BASE));
    assert!(cfg.instances[0].accept && !cfg.instances[0].drops_to_vips());
    let (cfg, _) = load_text(&instance(&format!("{BASE}\n  no_accept")));
    assert!(!cfg.instances[0].accept && cfg.instances[0].drops_to_vips());
    // The address owner accepts, whatever it says (vrrp_handle_accept_mode).
    let (cfg, _) = load_text(&instance(&format!("{BASE}\n  priority 255\n  no_accept")));
    assert!(!cfg.instances[0].drops_to_vips());
    // Strict: no_accept unless the owner; v3 may ask for accept.
    let strict = "global_defs {\n  vrrp_strict\n}\n";
    let (cfg, _) = load_text(&format!("{strict}{}", instance(BASE)));
    assert!(cfg.instances[0].strict && !cfg.instances[0].accept);
    let (cfg, _) = load_text(&format!("{strict}{}", instance(&format!("{BASE}\n  priority 255"))));
    assert!(cfg.instances[0].accept);
    let (cfg, _) = load_text(&format!("{strict}{}", instance(&format!("{BASE}\n  version 3\n  accept"))));
    assert!(cfg.instances[0].accept);
    // strict_mode per instance overrides vrrp_strict either way.
    let (cfg, _) = load_text(&format!("{strict}{}", instance(&format!("{BASE}\n  strict_mode off"))));
    assert!(!cfg.instances[0].strict && cfg.instances[0].accept);
    let (cfg, _) = load_text(&instance(&format!("{BASE}\n  strict_mode")));
    assert!(cfg.instances[0].strict && !cfg.instances[0].accept);
    let errs = errors(&instance(&format!("{BASE}\n  strict_mode maybe")));
    assert!(errs.iter().any(|e| e.contains("k.conf:7:15: error: `strict_mode maybe`")), "{errs:?}");
}

#[test]
fn strict_mode_resets_what_keepalived_resets_with_its_warnings() {
    let text = format!(
        "global_defs {{\n  vrrp_strict\n}}\n{}",
        instance(&format!(
            "{BASE}\n  state MASTER\n  priority 100\n  accept\n  preempt_delay 5\n  lower_prio_no_advert off\n  garp_lower_prio_repeat 3\n  authentication {{\n    auth_type PASS\n    auth_pass 1111\n  }}"
        ))
    );
    let (cfg, w) = load_text(&text);
    let i = &cfg.instances[0];
    assert_eq!(i.state, config::model::InitialState::Backup);
    assert_eq!(i.auth, None);
    assert!(!i.accept && i.drops_to_vips());
    assert_eq!(i.preempt_delay, std::time::Duration::ZERO);
    assert!(i.lower_prio_no_advert);
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    for m in [
        "k.conf:10:3: warning: (VI_1) State MASTER must match being address owner",
        "k.conf:16:3: warning: (VI_1) Strict mode does not support authentication. Ignoring.",
        "k.conf:12:3: warning: (VI_1) warning - accept mode for VRRP version 2 does not comply with RFC3768 - resetting",
        "k.conf:13:3: warning: (VI_1) preempt_delay is incompatible with strict mode - resetting",
        "k.conf:14:3: warning: (VI_1) Strict mode requires no lower priority advert. resetting",
        "k.conf:15:3: warning: (VI_1) Strict mode requires no repeat garps. resetting",
    ] {
        assert!(has(m), "{m}\n{w:#?}");
    }
    // Without strict mode, the same file keeps them.
    let (cfg, _) = load_text(&text.replace("  vrrp_strict\n", ""));
    let i = &cfg.instances[0];
    assert_eq!(i.state, config::model::InitialState::Master);
    assert!(i.auth.is_some() && i.accept && !i.lower_prio_no_advert);
    assert_eq!(i.preempt_delay, std::time::Duration::from_secs(5));
}

#[test]
fn strict_mode_refuses_unicast_peers_and_makes_ipv6_version_3() {
    let strict = "global_defs {\n  vrrp_strict\n}\n";
    let errs =
        errors(&format!("{strict}{}", instance(&format!("{BASE}\n  unicast_peer {{\n    192.0.2.2\n  }}"))));
    assert!(
        errs.iter()
            .any(|e| e.contains("k.conf:4:1: error: (VI_1) Unicast peers are not supported in strict mode")),
        "{errs:?}"
    );
    let v6 = "  interface eth0\n  virtual_router_id 55\n  version 2\n  virtual_ipaddress {\n    2001:db8::10/64\n  }";
    assert!(!errors(&instance(v6)).is_empty(), "v2 with IPv6 is refused outside strict mode");
    let (cfg, w) = load_text(&format!("{strict}{}", instance(v6)));
    assert_eq!(cfg.instances[0].version, Version::V3);
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(has("(VI_1) cannot use IPv6 with VRRP version 2; setting version 3"), "{w:#?}");
    assert!(has("(VI_1) the first IPv6 VIP address must be link local"), "{w:#?}");
}

#[test]
fn keepalived_default_config_loads_as_keepalived_reads_it() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/strict/keepalived.conf");
    let (cfg, w) = config::load(&path).expect("loads");
    let i = &cfg.instances[0];
    assert!(cfg.global.vrrp_strict && i.strict);
    assert_eq!((i.vrid, i.priority, i.version), (51, 100, Version::V2));
    assert_eq!(i.state, config::model::InitialState::Backup, "MASTER without priority 255 is reset");
    assert_eq!(i.auth, None, "strict mode drops PASS authentication");
    assert!(i.drops_to_vips(), "strict mode implies no_accept");
    assert!(i.lower_prio_no_advert);
    assert_eq!(i.vips.len(), 3);
    let w: Vec<String> = w.iter().map(|d| d.to_string()).collect();
    assert!(!w.iter().any(|x| x.contains("`vrrp_strict` ignored")), "{w:#?}");
}

#[test]
fn virtual_and_static_routes_and_rules_parse_as_keepalived_reads_them() {
    use vrrp_agent::config::routes::RuleAction;
    let text = format!(
        "static_ipaddress {{\n  203.0.113.5/24 dev eth1 scope link\n  203.0.113.6\n}}\n\
         static_routes {{\n  198.51.100.0/24 via 192.0.2.254 dev eth0 table 200\n}}\n\
         static_rules {{\n  from 203.0.113.0/24 table 200\n}}\n{}",
        instance(&format!(
            "{BASE}\n  virtual_routes {{\n    src 192.0.2.130 to 198.51.100.0/25 via 192.0.2.1 dev eth0 table main metric 7 scope link no_track\n    \
             blackhole 203.0.113.0/26 table 101\n    inet6 default via 2001:db8::1 dev eth0 table 100\n    \
             203.0.113.64/26 via 192.0.2.2 or 192.0.2.3\n    203.0.113.128/26 nexthop via 192.0.2.4 weight 3 nexthop via 192.0.2.5 dev eth0 onlink\n  }}\n  \
             virtual_rules {{\n    not from 198.51.100.0/24 to 203.0.113.0/24 lookup 100 preference 10 fwmark 0x10/0xff iif eth0 no_track\n    \
             from 2001:db8::/32 table 7\n    to 192.0.2.0/24 prohibit priority 12\n  }}"
        ))
    );
    let (cfg, warnings) = load(&text).expect("loads");
    assert_eq!(cfg.static_addresses.len(), 2);
    assert_eq!(cfg.static_addresses[1].dev.as_deref(), Some("eth0"), "keepalived's default interface");
    assert_eq!(cfg.static_routes[0].table, 200);
    assert_eq!(cfg.static_rules[0].priority, 16384, "numbered as keepalived numbers them");
    let i = &cfg.instances[0];
    let r = &i.routes;
    assert_eq!(r.len(), 5);
    assert_eq!(
        (r[0].src, r[0].dst, r[0].dst_len, r[0].table, r[0].metric, r[0].scope, r[0].no_track),
        (
            Some("192.0.2.130".parse().expect("address")),
            "198.51.100.0".parse().expect("address"),
            25,
            254,
            Some(7),
            Some(253),
            true
        )
    );
    assert_eq!((r[1].kind, r[1].table), (6, 101), "blackhole");
    assert!(r[2].v6 && r[2].dst_len == 0 && r[2].via == Some("2001:db8::1".parse().expect("address")));
    assert_eq!(r[3].nexthops.len(), 2, "via A or B is multipath");
    assert_eq!((r[4].nexthops[0].weight, r[4].nexthops[1].onlink), (3, true));
    let u = &i.rules;
    assert!(u[0].invert && u[0].no_track);
    assert_eq!(
        (u[0].action, u[0].priority, u[0].fwmark, u[0].iif.as_deref()),
        (RuleAction::Table(100), 10, Some((16, Some(255))), Some("eth0"))
    );
    assert!(u[1].v6);
    assert_eq!(u[1].priority, 16384, "IPv6 rules are numbered apart");
    assert_eq!((u[2].action, u[2].priority), (RuleAction::Prohibit, 12));
    assert!(
        warnings.iter().all(|w| w.contains("rule has no preference")),
        "only keepalived's numbering warning: {warnings:#?}"
    );
}

#[test]
fn bad_routes_and_rules_are_errors_and_unsupported_options_say_what_is_lost() {
    let errs = load(&instance(&format!("{BASE}\n  virtual_rules {{\n    to 192.168.100./24 table 1\n  }}")))
        .expect_err("refused");
    assert!(
        errs.iter().any(|e| e.contains("k.conf:8:8: error: virtual_rules: invalid rule to address")),
        "{errs:#?}"
    );
    let errs = load(&instance(&format!(
        "{BASE}\n  virtual_routes {{\n    via 192.0.2.1\n    198.51.100.0/24 via 2001:db8::1\n    198.51.100.0/24 frobnicate\n  }}\n  virtual_rules {{\n    from 192.0.2.0/24\n  }}"
    )))
    .expect_err("refused");
    for want in [
        "k.conf:8:5: error: virtual_routes: the route has no destination",
        "k.conf:9:25: error: virtual_routes: cannot mix IPv4 and IPv6",
        "k.conf:10:21: error: virtual_routes: unknown route keyword",
        "k.conf:13:5: error: virtual_rules: the rule has no action",
    ] {
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:#?}");
    }
    // Each family clash and a keyword at the end of its line, located.
    let errs = load(&instance(&format!(
        "{BASE}\n  virtual_routes {{\n    inet6 198.51.100.0/24 dev eth0\n    nexthop via 192.0.2.1 nexthop via 2001:db8::1\n    198.51.100.0/24 dev\n  }}\n  virtual_rules {{\n    from 192.0.2.0/24 to 2001:db8::/64 table 1\n    inet6 from 192.0.2.0/24 table 1\n    from 192.0.2.0/24 table\n  }}"
    )))
    .expect_err("refused");
    for want in [
        "k.conf:8:11: error: virtual_routes: cannot mix IPv4 and IPv6 in one route",
        "k.conf:9:39: error: virtual_routes: cannot mix IPv4 and IPv6 in one route",
        "k.conf:10:21: error: virtual_routes: `dev` needs a value",
        "k.conf:13:26: error: virtual_rules: rule mixes IPv4 and IPv6",
        "k.conf:14:16: error: virtual_rules: rule mixes IPv4 and IPv6",
        "k.conf:15:23: error: virtual_rules: `table` needs a value",
    ] {
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:#?}");
    }
    let (_, warnings) = load(&instance(&format!(
        "{BASE}\n  virtual_routes {{\n    198.51.100.0/24 dev eth0 mtu lock 1400 append\n  }}\n  virtual_rules {{\n    from 192.0.2.0/24 table 3 preference 5 uidrange 1000-2000\n  }}"
    )))
    .expect("loads");
    for want in [
        "k.conf:8:30: warning: virtual_routes: route option `mtu` not supported",
        "the route is added without the route's path MTU",
        "k.conf:8:44: warning: virtual_routes: route option `append` not supported",
        "k.conf:11:44: warning: virtual_rules: rule option `uidrange` not supported",
    ] {
        assert!(warnings.iter().any(|w| w.contains(want)), "{want}: {warnings:#?}");
    }
}

/// Load `text`; the configuration and the warnings as strings.
fn load_warn(text: &str) -> (config::Config, Vec<String>) {
    let dir = tree(&[("k.conf", text)]);
    let (cfg, warnings) = config::load(&dir.join("k.conf")).expect("loads");
    let _ = std::fs::remove_dir_all(dir);
    (cfg, warnings.iter().map(|d| d.to_string()).collect())
}

#[test]
fn use_vmac_as_keepalived_reads_it() {
    let (cfg, w) = load_warn(&instance(&format!("{BASE}\n  use_vmac")));
    assert!(w.is_empty(), "{w:?}");
    let i = &cfg.instances[0];
    let vm = i.vmac.as_ref().expect("use_vmac");
    assert_eq!((vm.name.as_deref(), vm.mac, i.vmac_xmit_base), (None, None, false));
    assert_eq!(vm.mac_for(55, Family::V4), [0, 0, 0x5e, 0, 1, 55]);
    assert_eq!(vm.mac_for(55, Family::V6), [0, 0, 0x5e, 0, 2, 55]);
    // A name and a MAC in either order; five octets take the VRID.
    let (cfg, w) =
        load_warn(&instance(&format!("{BASE}\n  use_vmac 02:00:00:00:07 vip55\n  vmac_xmit_base")));
    assert!(w.is_empty(), "{w:?}");
    let i = &cfg.instances[0];
    let vm = i.vmac.as_ref().expect("use_vmac");
    assert_eq!(
        (vm.name.as_deref(), vm.mac, i.vmac_xmit_base),
        (Some("vip55"), Some([2, 0, 0, 0, 7, 55]), true)
    );
}

#[test]
fn use_vmac_oddities_are_warnings() {
    let (cfg, w) = load_warn(&instance(&format!(
        "{BASE}\n  use_vmac a/b 01:00:00:00:00:01\n  unicast_peer {{\n    192.0.2.2\n  }}\n  use_vmac_addr"
    )));
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(has("use_vmac interface name `a/b` too long or with invalid characters: ignored"), "{w:#?}");
    assert!(has("use_vmac MAC address `01:00:00:00:00:01` ignored: it is a multicast address"), "{w:#?}");
    assert!(has("(VI_1) unicast with use_vmac requires vmac_xmit_base - setting"), "{w:#?}");
    assert!(has("`use_vmac_addr` is not supported"), "{w:#?}");
    let i = &cfg.instances[0];
    assert!(i.vmac_xmit_base, "unicast forces vmac_xmit_base, as keepalived");
    assert_eq!(i.vmac.as_ref().map(|v| (v.name.clone(), v.mac)), Some((None, None)));
    let (cfg, w) = load_warn(&instance(
        "  interface eth0\n  virtual_router_id 55\n  vmac_xmit_base\n  virtual_ipaddress {\n    192.0.2.130/24 use_vmac\n  }",
    ));
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(has("`use_vmac` on a virtual address is not supported"), "{w:#?}");
    assert!(has("`vmac_xmit_base` without `use_vmac` has no effect"), "{w:#?}");
    assert!(!cfg.instances[0].vmac_xmit_base);
}

#[test]
fn trackers_read_as_keepalived_reads_them() {
    use config::trackers::ParamMatch;
    let text = format!(
        "track_file prio {{\n  file /run/prio\n  weight -5 reverse\n  init_file 7 overwrite\n}}\n\
         vrrp_track_file maint {{\n  file /run/maint\n}}\n\
         vrrp_track_process web {{\n  process nginx -g daemon\n  param_match partial\n  quorum 2\n  quorum_max 4\n  delay 0.5\n}}\n\
         vrrp_track_process never {{\n  process telnetd\n  quorum_max 0\n  terminate_delay 2\n}}\n{}",
        instance(&format!(
            "{BASE}\n  dont_track_primary\n  track_file {{\n    prio\n    maint weight 0 reverse\n  }}\n  track_process {{\n    web weight -20 noreverse\n    never\n  }}"
        ))
    );
    let (cfg, w) = load_text(&text);
    assert!(!w.iter().any(|x| x.contains("not supported")), "{w:#?}");
    let f = &cfg.track_files;
    assert_eq!((f[0].weight, f[0].reverse, f[0].init), (-5, true, Some((7, true))));
    assert_eq!((f[1].weight, f[1].reverse, f[1].init), (1, false, None), "weight defaults to 1");
    let p = &cfg.track_processes;
    assert_eq!(p[0].process, "nginx");
    assert_eq!(p[0].params, ["-g", "daemon"]);
    assert_eq!((p[0].param_match, p[0].full_command), (ParamMatch::Partial, true));
    assert_eq!((p[0].quorum, p[0].quorum_max, p[0].weight), (2, 4, 0));
    assert_eq!(
        (p[0].fork_delay, p[0].terminate_delay),
        (Duration::from_millis(500), Duration::from_millis(500))
    );
    assert_eq!(
        (p[1].quorum, p[1].quorum_max, p[1].full_command),
        (0, 0, false),
        "quorum_max 0: must not run"
    );
    assert_eq!((p[1].fork_delay, p[1].terminate_delay), (Duration::ZERO, Duration::from_secs(2)));
    let i = &cfg.instances[0];
    assert!(i.dont_track_primary);
    let refs = |v: &[config::trackers::TrackRef]| {
        v.iter().map(|t| (t.name.clone(), t.weight, t.reverse)).collect::<Vec<_>>()
    };
    assert_eq!(refs(&i.track_file), [("prio".into(), None, None), ("maint".into(), Some(0), Some(true))]);
    assert_eq!(
        refs(&i.track_process),
        [("web".into(), Some(-20), Some(false)), ("never".into(), None, None)]
    );
}

#[test]
fn tracker_mistakes_are_errors_with_their_place() {
    let undefined = instance(&format!("{BASE}\n  track_file {{\n    nosuch\n  }}"));
    let errs = errors(&undefined);
    assert!(
        errs.iter().any(|e| e.contains("k.conf:8:5: error: (VI_1) track file nosuch not found")),
        "{errs:?}"
    );
    let errs = errors(&format!("track_file t {{\n  weight 3\n}}\n{}", instance(BASE)));
    assert!(errs.iter().any(|e| e.contains("No file set for track_file t")), "{errs:?}");
    let errs = errors(&format!("vrrp_track_process p {{\n  process x\n  weight 300\n}}\n{}", instance(BASE)));
    assert!(
        errs.iter().any(|e| e.contains("k.conf:3:3: error: Weight for vrrp_track_process p")),
        "{errs:?}"
    );
    let errs = errors(&format!("vrrp_track_process p {{\n  quorum 2\n}}\n{}", instance(BASE)));
    assert!(errs.iter().any(|e| e.contains("process name not specified")), "{errs:?}");
    let bad_ref = format!(
        "track_file t {{\n  file /run/t\n}}\n{}",
        instance(&format!("{BASE}\n  track_file {{\n    t weight 255\n  }}"))
    );
    assert!(errors(&bad_ref).iter().any(|e| e.contains("must be in [-254..254]")));
}

#[test]
fn announcement_and_fifo_settings_follow_keepalived_s_defaults() {
    let (cfg, _) = load_text(&instance(BASE));
    let i = &cfg.instances[0];
    // Unset, the lower-priority burst follows vrrp_garp_master_repeat / _delay.
    assert_eq!((i.garp_lower_prio_repeat, i.garp_lower_prio_delay, i.garp_master_refresh_repeat), (5, 5, 1));
    let g = "global_defs {\n  vrrp_min_garp\n  vrrp_garp_interval 0.05\n  vrrp_gna_interval 0\n  vrrp_garp_master_refresh_repeat 3\n  \
             vrrp_notify_fifo /run/k.fifo\n  vrrp_notify_fifo_script /bin/true\n  vrrp_startup_delay 2.5\n}\n";
    let (cfg, w) = load_text(&format!("{g}{}", instance(&format!("{BASE}\n  garp_lower_prio_repeat 2"))));
    assert!(!w.iter().any(|x| x.contains("not supported")), "{w:#?}");
    let i = &cfg.instances[0];
    assert_eq!((i.garp_master_repeat, i.garp_master_delay), (1, 0), "vrrp_min_garp");
    assert_eq!((i.garp_lower_prio_repeat, i.garp_lower_prio_delay, i.garp_master_refresh_repeat), (2, 0, 3));
    assert_eq!((i.garp_interval, i.gna_interval), (Duration::from_millis(50), Duration::ZERO));
    assert_eq!(cfg.global.startup_delay, Duration::from_millis(2500));
    let f = &cfg.global.fifos[0];
    assert_eq!(
        (f.keyword, f.path.to_str(), f.script.as_deref()),
        ("vrrp_notify_fifo", Some("/run/k.fifo"), Some("/bin/true"))
    );
    // Strict mode sends none.
    let (cfg, _) = load_text(&format!("global_defs {{\n  vrrp_strict\n}}\n{}", instance(BASE)));
    assert_eq!(cfg.instances[0].garp_lower_prio_repeat, 0);
}

#[test]
fn bfd_is_not_supported_and_says_what_is_lost() {
    let (_, w) = load_text(&instance(&format!("{BASE}\n  track_bfd {{\n    b1\n  }}")));
    assert!(
        w.iter().any(|x| x.contains("`track_bfd` is not supported by vrrp-agent and changes behaviour")
            && x.contains("no BFD session is run")),
        "{w:#?}"
    );
}

#[test]
fn vrrp_process_scheduling_is_read_as_keepalived_reads_it() {
    let g = "global_defs {\n  vrrp_priority -10\n  vrrp_no_swap\n  vrrp_rt_priority 50\n  vrrp_rlimit_rttime 1\n}\n";
    let (cfg, w) = load_text(&format!("{g}{}", instance(BASE)));
    assert!(!w.iter().any(|x| x.contains("vrrp_") && x.contains("no effect")), "{w:#?}");
    let gl = &cfg.global;
    // keepalived makes a limit of 1 µs 2 (its soft half must not be 0).
    assert_eq!(
        (gl.vrrp_priority, gl.vrrp_no_swap, gl.vrrp_rt_priority, gl.vrrp_rlimit_rttime),
        (Some(-10), true, Some(50), 2)
    );
    let (cfg, _) = load_text(&instance(BASE));
    assert_eq!((cfg.global.vrrp_rt_priority, cfg.global.vrrp_rlimit_rttime), (None, 10_000));
    for bad in ["vrrp_priority 20", "vrrp_rt_priority 0", "vrrp_rt_priority 100", "vrrp_rlimit_rttime 0"] {
        let errs = errors(&format!("global_defs {{\n  {bad}\n}}\n{}", instance(BASE)));
        assert!(errs.iter().any(|e| e.contains(":2:")), "{bad}: {errs:?}");
    }
}

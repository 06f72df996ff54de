//! keepalived's keywords, as data: every keyword keepalived 2.2.7 knows
//! where vrrp-agent reads a configuration (the top level, `global_defs`,
//! `vrrp_instance` and `vrrp_sync_group`), and what vrrp-agent does with it.
//!
//! The model (`model.rs`) implements the keywords marked [`Support::Implemented`]
//! and sends every other keyword here. A keyword keepalived knows is never
//! "check the spelling": it is either accepted without effect (and why),
//! or "not supported by vrrp-agent" with what the operator loses. Only a
//! word keepalived does not know gets the spelling hint.
//!
//! Source of the lists: `install_keyword_root` / `install_keyword` calls in
//! keepalived 2.2.7's `core/global_parser.c`, `vrrp/vrrp_parser.c`,
//! `check/check_parser.c`, `bfd/bfd_parser.c` and `trackers/track_file.c`.

use super::lexer::Loc;
use super::model::Report;

/// Where a keyword appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// At the top level of the file.
    Top,
    /// Inside `global_defs`.
    Global,
    /// Inside `vrrp_instance`.
    Instance,
    /// Inside `vrrp_sync_group`.
    SyncGroup,
}

impl Ctx {
    fn describe(self) -> &'static str {
        match self {
            Ctx::Top => "top-level keyword",
            Ctx::Global => "global_defs keyword",
            Ctx::Instance => "vrrp_instance keyword",
            Ctx::SyncGroup => "vrrp_sync_group keyword",
        }
    }
}

/// What vrrp-agent does with a keepalived keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Read by the model, with keepalived's meaning.
    Implemented,
    /// Accepted; it has no effect here, and nothing is lost: why.
    NoEffect(&'static str),
    /// Not supported; failover and routing are unchanged, but the operator
    /// loses a side feature: what.
    Lost(&'static str),
    /// Not supported, and failover or routing differ from keepalived's:
    /// what changes. `run` warns at start for each of these.
    Changes(&'static str),
}

/// One keepalived keyword.
#[derive(Clone, Copy, Debug)]
pub struct Keyword {
    /// Where it appears.
    pub ctx: Ctx,
    /// The keyword.
    pub name: &'static str,
    /// What vrrp-agent does with it.
    pub support: Support,
}

use Ctx::{Global as G, Instance as I, SyncGroup as S, Top as T};
use Support::{Changes, Implemented as Yes, Lost, NoEffect};

const fn k(ctx: Ctx, name: &'static str, support: Support) -> Keyword {
    Keyword { ctx, name, support }
}

const LVS: Support = NoEffect("LVS (virtual servers) is not part of vrrp-agent");
const LVS_BLOCK: Support = Lost(
    "LVS virtual servers are not part of vrrp-agent: run keepalived's checker (`keepalived --check`) or another load balancer for them",
);
const SCHED: Support = NoEffect("CPU affinity: set it in the systemd unit (CPUAffinity=)");
const BUFS: Support = NoEffect(
    "vrrp-agent sizes its netlink event socket's receive buffer itself from the configuration (SO_RCVBUFFORCE, 4 MiB to 128 MiB) and reads the kernel again after an overrun; adverts reach it through its XDP program's ring and peer map, not socket receive buffers",
);
const NAMES: Support = NoEffect("vrrp-agent's processes are named vrrp-agent");
const MAIL: Support = Lost("no e-mail is sent on state changes; use notify scripts");
const SNMP: Support = Lost("there is no SNMP agent; read `vrrp-agent status` instead");
const FIREWALL: Support =
    NoEffect("vrrp-agent enforces no_accept in its XDP program, without iptables or nftables rules");
const GARP_PACING: Support = Lost(
    "per-interface pacing groups are not supported: the global vrrp_garp_interval / vrrp_gna_interval pace each instance's announcements",
);
const BFD: Support = Changes(
    "BFD is not supported: no BFD session is run, and a peer or link failure BFD would detect in milliseconds does not lower any priority or put any instance in FAULT; only adverts (Master_Down_Interval) detect a dead master",
);

/// Every keepalived keyword of the three contexts.
pub static KEYWORDS: &[Keyword] = &[
    // Top level.
    k(T, "global_defs", Yes),
    k(T, "vrrp_instance", Yes),
    k(T, "vrrp_script", Yes),
    k(T, "vrrp_sync_group", Yes),
    k(T, "static_ipaddress", Yes),
    k(T, "static_routes", Yes),
    k(T, "static_rules", Yes),
    k(
        T,
        "track_group",
        Changes(
            "not supported: static addresses, routes and rules are not tied to the group's interfaces (they stay while the agent runs)",
        ),
    ),
    k(T, "garp_group", GARP_PACING),
    k(T, "linkbeat_interfaces", NoEffect("link state always comes from netlink events")),
    k(T, "linkbeat_use_polling", NoEffect("link state always comes from netlink events")),
    k(T, "vrrp_track_process", Yes),
    k(T, "track_file", Yes),
    k(T, "vrrp_track_file", Yes),
    k(T, "bfd_instance", BFD),
    k(
        T,
        "interface_up_down_delays",
        Changes("interface up/down delays are not supported: link changes act at once"),
    ),
    k(T, "virtual_server", LVS_BLOCK),
    k(T, "virtual_server_group", LVS_BLOCK),
    k(T, "SSL", LVS_BLOCK),
    k(T, "net_namespace", Yes),
    k(T, "net_namespace_ipvs", LVS),
    k(T, "namespace_with_ipsets", FIREWALL),
    k(T, "instance", NoEffect("name the agent with `vrrp-agent run --name`")),
    k(T, "use_pid_dir", NoEffect("vrrp-agent keeps its lock and state under /run/vrrp-agent")),
    k(T, "child_wait_time", NoEffect("vrrp-agent's supervisor waits for its worker itself")),
    // global_defs.
    k(G, "router_id", Yes),
    k(G, "vrrp_version", Yes),
    k(G, "vrrp_garp_master_delay", Yes),
    k(G, "vrrp_garp_master_repeat", Yes),
    k(G, "vrrp_garp_master_refresh", Yes),
    k(G, "enable_script_security", Yes),
    k(G, "script_user", Yes),
    k(G, "max_auto_priority", NoEffect("vrrp-agent's timers do not depend on scheduling priority")),
    k(G, "min_auto_priority_delay", NoEffect("vrrp-agent's timers do not depend on scheduling priority")),
    k(G, "linkbeat_use_polling", NoEffect("link state always comes from netlink events")),
    k(G, "net_namespace", Yes),
    k(G, "net_namespace_ipvs", LVS),
    k(G, "namespace_with_ipsets", FIREWALL),
    k(G, "use_pid_dir", NoEffect("vrrp-agent keeps its lock and state under /run/vrrp-agent")),
    k(G, "instance", NoEffect("name the agent with `vrrp-agent run --name`")),
    k(G, "child_wait_time", NoEffect("vrrp-agent's supervisor waits for its worker itself")),
    k(G, "process_names", NAMES),
    k(G, "process_name", NAMES),
    k(G, "vrrp_process_name", NAMES),
    k(G, "checker_process_name", NAMES),
    k(G, "lvs_process_name", NAMES),
    k(G, "bfd_process_name", NAMES),
    k(G, "notification_email_from", MAIL),
    k(G, "smtp_server", MAIL),
    k(G, "smtp_helo_name", MAIL),
    k(G, "smtp_connect_timeout", MAIL),
    k(G, "notification_email", MAIL),
    k(G, "smtp_alert", MAIL),
    k(G, "smtp_alert_vrrp", MAIL),
    k(G, "smtp_alert_checker", MAIL),
    k(G, "no_email_faults", MAIL),
    k(G, "no_checker_emails", MAIL),
    k(G, "startup_script", Lost("the startup script is not run")),
    k(G, "startup_script_timeout", Lost("the startup script is not run")),
    k(G, "shutdown_script", Lost("the shutdown script is not run")),
    k(G, "shutdown_script_timeout", Lost("the shutdown script is not run")),
    k(G, "checker_log_all_failures", LVS),
    k(
        G,
        "dynamic_interfaces",
        NoEffect(
            "vrrp-agent always accepts interfaces that appear later: the instance is in FAULT until then",
        ),
    ),
    k(G, "default_interface", Changes("not supported: static addresses and VIPs need their interface")),
    k(G, "disable_local_igmp", Lost("IGMP reports for 224.0.0.18 are sent as the kernel does by default")),
    k(G, "lvs_timeouts", LVS),
    k(G, "lvs_flush", LVS),
    k(G, "lvs_flush_on_stop", LVS),
    k(G, "lvs_flush_onstop", LVS),
    k(G, "lvs_sync_daemon", LVS),
    k(G, "vrrp_mcast_group4", Changes("not supported: IPv4 adverts go to 224.0.0.18 (RFC 5798)")),
    k(G, "vrrp_mcast_group6", Changes("not supported: IPv6 adverts go to ff02::12 (RFC 5798)")),
    k(G, "vrrp_garp_master_refresh_repeat", Yes),
    k(G, "vrrp_garp_lower_prio_delay", Yes),
    k(G, "vrrp_garp_lower_prio_repeat", Yes),
    k(
        G,
        "vrrp_down_timer_adverts",
        Changes("not supported: Master_Down_Interval is 3 adverts plus skew (RFC 5798)"),
    ),
    k(G, "vrrp_garp_interval", Yes),
    k(G, "vrrp_gna_interval", Yes),
    k(G, "vrrp_min_garp", Yes),
    k(G, "vrrp_garp_extra_if", Lost("no gratuitous ARPs are sent on other interfaces")),
    k(G, "vrrp_vmac_garp_intvl", Lost("no gratuitous ARPs are sent on other interfaces")),
    k(G, "vrrp_lower_prio_no_advert", Yes),
    k(
        G,
        "vrrp_higher_prio_send_advert",
        Changes("not supported: a master does not advertise before yielding to a higher priority"),
    ),
    k(G, "vrrp_iptables", FIREWALL),
    k(G, "vrrp_ipsets", FIREWALL),
    k(G, "nftables", FIREWALL),
    k(G, "nftables_priority", FIREWALL),
    k(G, "nftables_ifindex", FIREWALL),
    k(G, "nftables_ipvs", LVS),
    k(G, "nftables_ipvs_priority", LVS),
    k(G, "nftables_ipvs_start_fwmark", LVS),
    k(G, "nftables_counters", FIREWALL),
    k(
        G,
        "vrrp_check_unicast_src",
        Changes("not supported: unicast adverts from addresses that are not peers are not refused"),
    ),
    k(
        G,
        "vrrp_skip_check_adv_addr",
        NoEffect("vrrp-agent never compares the addresses in adverts with its own, as this option asks"),
    ),
    k(G, "vrrp_strict", Yes),
    k(G, "vrrp_priority", Yes),
    k(G, "vrrp_no_swap", Yes),
    k(G, "vrrp_rt_priority", Yes),
    k(G, "vrrp_cpu_affinity", SCHED),
    k(G, "vrrp_rlimit_rttime", Yes),
    k(G, "vrrp_rlimit_rtime", Yes),
    k(G, "checker_priority", LVS),
    k(G, "checker_no_swap", LVS),
    k(G, "checker_rt_priority", LVS),
    k(G, "checker_cpu_affinity", LVS),
    k(G, "checker_rlimit_rttime", LVS),
    k(G, "checker_rlimit_rtime", LVS),
    k(G, "bfd_priority", BFD),
    k(G, "bfd_no_swap", BFD),
    k(G, "bfd_rt_priority", BFD),
    k(G, "bfd_cpu_affinity", BFD),
    k(G, "bfd_rlimit_rttime", BFD),
    k(G, "bfd_rlimit_rtime", BFD),
    k(G, "notify_fifo", Yes),
    k(G, "notify_fifo_script", Yes),
    k(G, "vrrp_notify_fifo", Yes),
    k(G, "vrrp_notify_fifo_script", Yes),
    k(G, "vrrp_notify_priority_changes", Lost("priority changes are not notified")),
    k(G, "fifo_write_vrrp_states_on_reload", Lost("state changes are not written to a FIFO")),
    k(G, "lvs_notify_fifo", LVS),
    k(G, "lvs_notify_fifo_script", LVS),
    k(G, "snmp_socket", SNMP),
    k(G, "enable_traps", SNMP),
    k(G, "enable_snmp_vrrp", SNMP),
    k(G, "enable_snmp_keepalived", SNMP),
    k(G, "enable_snmp_rfc", SNMP),
    k(G, "enable_snmp_rfcv2", SNMP),
    k(G, "enable_snmp_rfcv3", SNMP),
    k(G, "enable_snmp_checker", SNMP),
    k(G, "enable_dbus", Lost("there is no D-Bus interface; read `vrrp-agent status` instead")),
    k(G, "dbus_service_name", Lost("there is no D-Bus interface")),
    k(G, "vrrp_netlink_cmd_rcv_bufs", BUFS),
    k(G, "vrrp_netlink_cmd_rcv_bufs_force", BUFS),
    k(G, "vrrp_netlink_monitor_rcv_bufs", BUFS),
    k(G, "vrrp_netlink_monitor_rcv_bufs_force", BUFS),
    k(G, "process_monitor_rcv_bufs", BUFS),
    k(G, "process_monitor_rcv_bufs_force", BUFS),
    k(G, "lvs_netlink_cmd_rcv_bufs", LVS),
    k(G, "lvs_netlink_cmd_rcv_bufs_force", LVS),
    k(G, "lvs_netlink_monitor_rcv_bufs", LVS),
    k(G, "lvs_netlink_monitor_rcv_bufs_force", LVS),
    k(G, "rs_init_notifies", LVS),
    k(G, "vrrp_rx_bufs_policy", BUFS),
    k(G, "vrrp_rx_bufs_multiplier", BUFS),
    k(G, "vrrp_startup_delay", Yes),
    k(G, "log_unknown_vrids", NoEffect("adverts of unknown VRIDs are counted in `vrrp-agent stats`")),
    k(G, "vmac_prefix", Changes("not supported: VMAC interfaces are named vrrp.VRID")),
    k(G, "vmac_addr_prefix", Changes("not supported: VMAC interfaces are named vrrp.VRID")),
    k(G, "umask", NoEffect("vrrp-agent's files are created 0644 under /run/vrrp-agent")),
    k(G, "random_seed", NoEffect("vrrp-agent draws no random numbers for VRRP")),
    k(G, "reload_check_config", NoEffect("vrrp-agent always checks a configuration before using it")),
    k(G, "reload_time_file", Lost("scheduled reloads are not supported")),
    k(G, "reload_repeat", Lost("scheduled reloads are not supported")),
    k(G, "reload_file", Lost("scheduled reloads are not supported")),
    k(
        G,
        "include_check",
        Lost("a missing included file stays a warning; write `includem` or `includea` to make it an error"),
    ),
    k(G, "config_save_dir", Lost("configurations are not saved on reload")),
    k(G, "tmp_config_directory", NoEffect("vrrp-agent writes no temporary configuration")),
    k(G, "data_use_instance", NoEffect("dump files are named after `--name`")),
    // vrrp_instance.
    k(I, "state", Yes),
    k(I, "interface", Yes),
    k(I, "virtual_router_id", Yes),
    k(I, "priority", Yes),
    k(I, "advert_int", Yes),
    k(I, "version", Yes),
    k(I, "mcast_src_ip", Yes),
    k(I, "unicast_src_ip", Yes),
    k(I, "unicast_peer", Yes),
    k(I, "authentication", Yes),
    k(I, "virtual_ipaddress", Yes),
    k(I, "virtual_ipaddress_excluded", Yes),
    k(I, "preempt", Yes),
    k(I, "nopreempt", Yes),
    k(I, "preempt_delay", Yes),
    k(I, "garp_master_delay", Yes),
    k(I, "garp_master_repeat", Yes),
    k(I, "garp_master_refresh", Yes),
    k(I, "track_interface", Yes),
    k(I, "track_script", Yes),
    k(I, "notify", Yes),
    k(I, "notify_master", Yes),
    k(I, "notify_backup", Yes),
    k(I, "notify_fault", Yes),
    k(I, "notify_stop", Yes),
    k(I, "use_vmac", Yes),
    k(
        I,
        "use_vmac_addr",
        Changes(
            "not supported: VIPs and eVIPs on another interface (`dev`) or of the other family get no macvlan of their own; they answer with that interface's own MAC",
        ),
    ),
    k(I, "vmac_xmit_base", Yes),
    k(I, "use_ipvlan", Changes("ipvlan interfaces are not supported: the VIPs live on the interface")),
    k(
        I,
        "unicast_fault_no_peer",
        Changes("not supported: an instance with no unicast peer is not put in FAULT"),
    ),
    k(
        I,
        "check_unicast_src",
        Changes("not supported: unicast adverts from addresses that are not peers are not refused"),
    ),
    k(I, "old_unicast_checksum", Changes("not supported: unicast adverts use the RFC checksum")),
    k(
        I,
        "native_ipv6",
        NoEffect("an instance is IPv6 when its virtual addresses are, and then always native VRRPv3"),
    ),
    k(I, "vrf", Changes("VRFs are not supported: adverts and VIPs use the interface's own table")),
    k(I, "dont_track_primary", Yes),
    k(I, "track_file", Yes),
    k(I, "track_process", Yes),
    k(I, "track_bfd", BFD),
    k(I, "mcast_dst_ip", Changes("not supported: adverts go to 224.0.0.18 / ff02::12 (RFC 5798)")),
    k(I, "track_src_ip", Changes("not supported: the advert source address is not tracked")),
    k(I, "unicast_ttl", Changes("not supported: unicast adverts are sent and checked with TTL 255")),
    k(I, "promote_secondaries", Lost("the interface's promote_secondaries setting is left as it is")),
    k(I, "linkbeat_use_polling", NoEffect("link state always comes from netlink events")),
    k(I, "virtual_routes", Yes),
    k(I, "virtual_rules", Yes),
    k(I, "accept", Yes),
    k(I, "no_accept", Yes),
    k(
        I,
        "skip_check_adv_addr",
        NoEffect("vrrp-agent never compares the addresses in adverts with its own, as this option asks"),
    ),
    k(I, "strict_mode", Yes),
    k(I, "debug", NoEffect("use `--log-level debug`")),
    k(I, "notify_deleted", Lost("no notification is sent when the instance is removed")),
    k(I, "notify_master_rx_lower_pri", Lost("the script is not run when a master hears a lower priority")),
    k(I, "smtp_alert", MAIL),
    k(I, "notify_priority_changes", Lost("priority changes are not notified")),
    k(I, "lvs_sync_daemon_interface", LVS),
    k(I, "garp_master_refresh_repeat", Yes),
    k(I, "garp_lower_prio_delay", Yes),
    k(I, "garp_lower_prio_repeat", Yes),
    k(
        I,
        "down_timer_adverts",
        Changes("not supported: Master_Down_Interval is 3 adverts plus skew (RFC 5798)"),
    ),
    k(I, "garp_extra_if", Lost("no gratuitous ARPs are sent on other interfaces")),
    k(I, "vmac_garp_intvl", Lost("no gratuitous ARPs are sent on other interfaces")),
    k(I, "lower_prio_no_advert", Yes),
    k(
        I,
        "higher_prio_send_advert",
        Changes("not supported: a master does not advertise before yielding to a higher priority"),
    ),
    k(I, "kernel_rx_buf_size", BUFS),
    // vrrp_sync_group (vrrp_parser.c; `smtp_alert` is read too: it warns
    // only where mail is configured, since otherwise nothing is lost).
    k(S, "group", Yes),
    k(S, "track_interface", Yes),
    k(S, "track_script", Yes),
    k(S, "track_file", Yes),
    k(S, "track_process", Yes),
    k(S, "track_bfd", Changes("BFD is not supported: a BFD session does not move the group's members")),
    k(S, "notify_backup", Yes),
    k(S, "notify_master", Yes),
    k(S, "notify_fault", Yes),
    k(S, "notify_stop", Yes),
    k(S, "notify", Yes),
    k(S, "smtp_alert", Yes),
    k(S, "global_tracking", Yes),
    k(S, "sync_group_tracking_weight", Yes),
    k(S, "notify_priority_changes", Lost("priority changes are not notified")),
];

/// The entry for `name` in `ctx`, if keepalived knows it there.
pub fn lookup(ctx: Ctx, name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|kw| kw.ctx == ctx && kw.name == name)
}

/// Report a keyword the model did not read: "not supported" with what is
/// lost, "no effect" with why, or, for a word keepalived does not know, a
/// spelling hint. Each keyword gets exactly one warning.
pub fn report_unread(ctx: Ctx, name: &str, loc: &Loc, r: &mut Report) {
    match lookup(ctx, name).map(|kw| kw.support) {
        Some(Support::Changes(what)) => {
            r.warn(loc, format!("`{name}` is not supported by vrrp-agent and changes behaviour"), what)
        }
        Some(Support::Lost(what)) => r.warn(loc, format!("`{name}` is not supported by vrrp-agent"), what),
        Some(Support::NoEffect(why)) => r.warn(loc, format!("`{name}` accepted; it has no effect"), why),
        // The model reads these; reaching here means it was misplaced
        // (e.g. a block keyword given a value only), which the model reports.
        Some(Support::Implemented) => {
            r.warn(loc, format!("`{name}` ignored here"), "see keepalived.conf(5) for its form")
        }
        None => {
            let elsewhere = [Ctx::Top, Ctx::Global, Ctx::Instance, Ctx::SyncGroup]
                .into_iter()
                .find(|c| *c != ctx && lookup(*c, name).is_some());
            match elsewhere {
                Some(c) => r.warn(
                    loc,
                    format!("`{name}` is not a {} and is ignored", ctx.describe()),
                    format!("keepalived knows it as a {}; move it there", c.describe()),
                ),
                None => r.warn(
                    loc,
                    format!("unknown {} `{name}` ignored", ctx.describe()),
                    "keepalived does not know it either: check the spelling against keepalived.conf(5)",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_keyword_is_listed_once_per_context() {
        let mut seen = HashSet::new();
        for kw in KEYWORDS {
            assert!(seen.insert((kw.ctx as u8, kw.name)), "{:?} {} listed twice", kw.ctx, kw.name);
        }
    }

    #[test]
    fn every_unsupported_keyword_says_what_is_lost() {
        for kw in KEYWORDS {
            if let Support::Changes(s) | Support::Lost(s) | Support::NoEffect(s) = kw.support {
                assert!(s.len() > 10, "{} needs a real explanation", kw.name);
            }
        }
    }

    fn warning_for(ctx: Ctx, name: &str) -> String {
        let loc = Loc { file: std::sync::Arc::new("t.conf".into()), line: 1, col: 1 };
        let mut r = Report::default();
        report_unread(ctx, name, &loc, &mut r);
        let diags = r.finish(&loc);
        assert_eq!(diags.len(), 1, "exactly one warning for {name}");
        format!("{}", diags[0])
    }

    #[test]
    fn known_keywords_are_never_called_misspelt() {
        for kw in KEYWORDS.iter().filter(|kw| kw.support != Support::Implemented) {
            let w = warning_for(kw.ctx, kw.name);
            assert!(!w.contains("spelling"), "{w}");
        }
        assert!(warning_for(Ctx::Instance, "use_ipvlan").contains("not supported by vrrp-agent"));
        assert!(warning_for(Ctx::Global, "smtp_server").contains("not supported by vrrp-agent"));
    }

    #[test]
    fn unknown_words_get_the_spelling_hint_and_misplaced_ones_their_place() {
        assert!(warning_for(Ctx::Instance, "priorty").contains("check the spelling"));
        let w = warning_for(Ctx::Instance, "vrrp_strict");
        assert!(w.contains("global_defs keyword"), "{w}");
    }

    #[test]
    fn the_readme_lists_every_behaviour_changing_keyword() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
        let start = readme.find("### Not supported: keepalived keywords").expect("the README's section");
        let section = &readme[start..];
        let section = &section[..section[4..].find("\n#").map_or(section.len(), |e| e + 4)];
        for kw in KEYWORDS.iter().filter(|k| matches!(k.support, Support::Changes(_))) {
            assert!(section.contains(&format!("`{}`", kw.name)), "README does not list `{}`", kw.name);
        }
    }
}

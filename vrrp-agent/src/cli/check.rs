//! `vrrp-agent check-config`.

use std::path::Path;

use anyhow::Result;
use vrrp_agent::config::{self, ConfigError, Instance, Vip};
use vrrp_common::wire::Version;

fn vip(v: &Vip) -> String {
    let mut s = format!("{}/{}", v.addr, v.prefix);
    if let Some(d) = &v.dev {
        s += &format!(" dev {d}");
    }
    if let Some(l) = &v.label {
        s += &format!(" label {l}");
    }
    if let Some(sc) = &v.scope {
        s += &format!(" scope {sc}");
    }
    s
}

/// One line per instance, for people.
pub fn describe(i: &Instance) -> String {
    let version = if i.version == Version::V2 { 2 } else { 3 };
    let mut parts = vec![
        format!("interface {}", i.interface),
        format!("VRID {}", i.vrid),
        format!("priority {}", i.priority),
        format!("VRRPv{version}"),
        format!("advert_int {}.{:02} s", i.advert_int.0 / 100, i.advert_int.0 % 100),
    ];
    if i.unicast_peers.is_empty() {
        parts.push("multicast".into());
    } else {
        let src = i.unicast_src_ip.map_or("the interface address".to_owned(), |a| a.to_string());
        let peers: Vec<String> = i.unicast_peers.iter().map(ToString::to_string).collect();
        parts.push(format!("unicast from {src} to {}", peers.join(", ")));
    }
    match &i.auth {
        Some(vrrp_agent::config::model::AuthConf::Pass(_)) => parts.push("auth PASS".into()),
        Some(vrrp_agent::config::model::AuthConf::Ah(_)) => parts.push("auth AH (IPsec, HMAC-MD5-96)".into()),
        None => {}
    }
    parts.push(format!("VIPs {}", i.vips.iter().map(vip).collect::<Vec<_>>().join(", ")));
    if let Some(vm) = &i.vmac {
        let mac =
            vm.mac_for(i.vrid, i.family).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        let name = vm.name.clone().unwrap_or_else(|| format!("vrrp.{}", i.vrid));
        let xmit = if i.vmac_xmit_base { ", adverts from the base" } else { "" };
        parts.push(format!("use_vmac {name} ({mac}{xmit})"));
    }
    parts.push(if i.preempt { "preempt".into() } else { "nopreempt".into() });
    if !i.preempt_delay.is_zero() {
        parts.push(format!("preempt_delay {} s", i.preempt_delay.as_secs_f64()));
    }
    if !i.track_script.is_empty() {
        let t: Vec<&str> = i.track_script.iter().map(|t| t.name.as_str()).collect();
        parts.push(format!("track_script {}", t.join(", ")));
    }
    if i.strict {
        parts.push("strict_mode".into());
    }
    if i.drops_to_vips() {
        parts.push("no_accept (packets to the VIPs dropped while MASTER)".into());
    }
    for (n, what) in [
        (i.vips_excluded.len(), "excluded address(es)"),
        (i.routes.len(), "virtual route(s)"),
        (i.rules.len(), "virtual rule(s)"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    format!("{}: {}", i.name, parts.join(", "))
}

/// The error for a configuration that could not be read: the file itself
/// missing is "not configured", anything else a refused configuration.
pub fn refused(path: &Path, e: &ConfigError) -> anyhow::Error {
    use super::exit::{CONFIG, NOT_CONFIGURED, coded};
    match e {
        ConfigError::Lex(config::lexer::LexError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && !path.exists() =>
        {
            coded(NOT_CONFIGURED, format!("{}: no such configuration file", path.display()))
        }
        _ => {
            eprintln!("{e}");
            coded(CONFIG, format!("{}: configuration refused", path.display()))
        }
    }
}

/// Load and check as `run` does (the same function), print, and fail on
/// errors.
pub fn run(explicit: Option<&Path>) -> Result<()> {
    let path = config::default_path(explicit);
    match config::check(&path) {
        Ok((cfg, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: {} instance(s), {} script(s)",
                path.display(),
                cfg.instances.len(),
                cfg.scripts.len()
            );
            for i in &cfg.instances {
                println!("{}", describe(i));
            }
            let statics = (cfg.static_addresses.len(), cfg.static_routes.len(), cfg.static_rules.len());
            if statics != (0, 0, 0) {
                println!(
                    "static: {} address(es), {} route(s), {} rule(s), installed while the agent runs",
                    statics.0, statics.1, statics.2
                );
            }
            for g in &cfg.sync_groups {
                println!("sync group {}: {}", g.name, g.members.join(", "));
            }
            Ok(())
        }
        Err(ConfigError::Invalid { diags }) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let n = diags.iter().filter(|d| d.severity == config::Severity::Error).count();
            Err(super::exit::coded(super::exit::CONFIG, format!("{}: {n} error(s)", path.display())))
        }
        Err(e) => Err(refused(&path, &e)),
    }
}

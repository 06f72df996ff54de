//! `vrrp-agent check-config`.

use std::path::Path;

use anyhow::{Result, bail};
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
    parts.push(if i.preempt { "preempt".into() } else { "nopreempt".into() });
    if !i.preempt_delay.is_zero() {
        parts.push(format!("preempt_delay {} s", i.preempt_delay.as_secs_f64()));
    }
    if !i.track_script.is_empty() {
        let t: Vec<&str> = i.track_script.iter().map(|t| t.name.as_str()).collect();
        parts.push(format!("track_script {}", t.join(", ")));
    }
    format!("{}: {}", i.name, parts.join(", "))
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
            Ok(())
        }
        Err(ConfigError::Invalid { diags }) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let n = diags.iter().filter(|d| d.severity == config::Severity::Error).count();
            bail!("{}: {n} error(s)", path.display())
        }
        Err(e) => bail!("{e}"),
    }
}

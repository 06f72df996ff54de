//! The targets, judged from a run's results: met, or missed and by
//! how much. Written at the top of the report.

use serde_json::Value;

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_f64()
}

fn rows<'a>(json: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    json.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn arm<'a>(json: &'a Value, key: &str, arm: &str) -> Option<&'a Value> {
    rows(json, key).find(|r| r.get("arm").and_then(Value::as_str) == Some(arm))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// One line per target with the figures behind it.
pub fn judge(json: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows(json, "failover").filter(|r| r.get("arm").and_then(Value::as_str) == Some("vrrp-agent")) {
        let (Some(med), Some(p95), Some(max), Some(int)) = (
            f(r, &["excess_summary_ms", "median"]),
            f(r, &["excess_summary_ms", "p95"]),
            f(r, &["excess_summary_ms", "max"]),
            f(r, &["advert_int_ms"]),
        ) else {
            continue;
        };
        match r.get("scenario").and_then(Value::as_str) {
            Some("crash") => {
                let ok = med <= 1.0 && p95 <= 3.0;
                let by = if ok {
                    String::new()
                } else {
                    format!(" (by {:.2} ms median, {:.2} ms p95)", (med - 1.0).max(0.0), (p95 - 3.0).max(0.0))
                };
                out.push(format!(
                    "Crash failover at {int} ms: excess over Master_Down_Interval ≤ 1 ms median and ≤ 3 ms p95: {}{by}; median {med:.2} ms, p95 {p95:.2} ms",
                    verdict(ok)
                ));
            }
            Some("graceful") => {
                let ok = max <= 2.0;
                out.push(format!(
                    "Graceful failover at {int} ms within Skew_Time + 2 ms, every run: {}; p95 {p95:.2} ms, max {max:.2} ms over Skew_Time",
                    verdict(ok)
                ));
            }
            _ => {}
        }
    }
    if let Some(x) = arm(json, "split_flood", "vrrp-agent (XDP)") {
        let (cpu, fm, holders) = (
            f(x, &["backup_cpu_pct"]).unwrap_or(f64::NAN),
            f(x, &["false_master"]).unwrap_or(f64::NAN),
            f(x, &["max_holders"]).unwrap_or(f64::NAN),
        );
        let ok = cpu < 1.0 && fm == 0.0 && holders <= 1.0;
        out.push(format!(
            "Flood at the backup with XDP: zero false state changes and agent CPU < 1% of a core: {}; {fm} false MASTER entries, at most {holders} VIP holder(s), {cpu:.2}% CPU",
            verdict(ok)
        ));
    }
    if let Some(x) = arm(json, "flood", "xdp") {
        let cpu = f(x, &["agent_cpu_pct"]).unwrap_or(f64::NAN);
        let pps = f(x, &["rejected_pps"]).unwrap_or(f64::NAN);
        out.push(format!(
            "Flood at the agent's interface with XDP, agent CPU < 1% of a core at the generator's full rate: {}; {cpu:.2}% at {pps:.0} packets/s",
            verdict(cpu < 1.0)
        ));
    }
    for (key, what) in [("steady", "Steady state"), ("scale", "Scale")] {
        if let (Some(a), Some(k)) = (arm(json, key, "vrrp-agent"), arm(json, key, "keepalived")) {
            let (ac, kc) = (
                f(a, &["backup_cpu_pct"]).unwrap_or(f64::NAN),
                f(k, &["backup_cpu_pct"]).unwrap_or(f64::NAN),
            );
            let ratio = kc / ac;
            let ok = ratio >= 10.0;
            let by = if ok { String::new() } else { format!(" (by {:.1}×)", 10.0 / ratio) };
            out.push(format!(
                "{what}: backup agent CPU at least 10× below keepalived's: {}{by}; {ac:.3}% against {kc:.3}% ({ratio:.1}×)",
                verdict(ok)
            ));
        }
    }
    if let (Some(a), Some(k)) = (arm(json, "steady", "vrrp-agent"), arm(json, "steady", "keepalived")) {
        let cpu = |r: &Value| f(r, &["master_cpu_pct"]).unwrap_or(f64::NAN);
        let sirq = |r: &Value| f(r, &["master_softirq", "cpu_pct"]);
        let (ac, kc) = (cpu(a), cpu(k));
        let ok = ac <= kc / 2.0;
        let by = if ok { String::new() } else { format!(" (by {:.1}×)", ac / (kc / 2.0)) };
        let without = match (sirq(a), sirq(k)) {
            (Some(asq), Some(ksq)) => format!(
                "; softirq run in its context {asq:.3}% against {ksq:.3}%, without it {:.3}% against {:.3}% ({:.1}×)",
                ac - asq,
                kc - ksq,
                (kc - ksq) / (ac - asq)
            ),
            _ => String::new(),
        };
        out.push(format!(
            "Steady state: master CPU at 10 ms adverts at most half of keepalived's (whole process trees, schedstat): {}{by}; {ac:.3}% against {kc:.3}% ({:.1}×){without}",
            verdict(ok),
            kc / ac
        ));
    }
    out.extend(scale4k(json));
    // Issue 15: start to BACKUP with one instance no slower than keepalived
    // (medians of the start-up scenario, both arms in the same run).
    let one = |arm: &str| {
        rows(json, "startup")
            .find(|r| r.get("arm").and_then(Value::as_str) == Some(arm) && f(r, &["instances"]) == Some(1.0))
            .and_then(|r| f(r, &["summary_ms", "median"]))
    };
    if let (Some(a), Some(k)) = (one("vrrp-agent"), one("keepalived")) {
        let by = if a <= k { String::new() } else { format!(" (by {:.1} ms, {:.2}×)", a - k, a / k) };
        out.push(format!(
            "Start to BACKUP with one instance no slower than keepalived (median): {}{by}; {a:.1} ms against {k:.1} ms",
            verdict(a <= k)
        ));
    }
    for r in rows(json, "footprint").filter(|r| r.get("arm").and_then(Value::as_str) == Some("vrrp-agent")) {
        let (n, rss, start) = (
            f(r, &["instances"]).unwrap_or(f64::NAN),
            f(r, &["rss_kib"]).unwrap_or(f64::NAN),
            f(r, &["start_to_backup_ms"]).unwrap_or(f64::NAN),
        );
        if n >= 250.0 {
            out.push(format!(
                "Footprint: RSS below 16 MiB with {n} instances: {}; {:.1} MiB",
                verdict(rss < 16.0 * 1024.0),
                rss / 1024.0
            ));
        }
        out.push(format!(
            "Start to Backup under 200 ms ({n} instance(s)): {}; {start:.0} ms",
            verdict(start < 200.0)
        ));
    }
    out
}

/// Issue 15's scale targets, from the scale4k rows.
fn scale4k(json: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(a) = arm(json, "scale4k", "vrrp-agent") else { return out };
    let k = arm(json, "scale4k", "keepalived");
    let n = f(a, &["instances"]).unwrap_or(f64::NAN);
    let held = |r: &Value| r.get("election_held").and_then(Value::as_bool) == Some(true);
    let (am, ab) =
        (f(a, &["master_cpu_pct"]).unwrap_or(f64::NAN), f(a, &["backup_cpu_pct"]).unwrap_or(f64::NAN));
    match k {
        Some(k) if held(k) && held(a) => {
            let (km, kb) = (
                f(k, &["master_cpu_pct"]).unwrap_or(f64::NAN),
                f(k, &["backup_cpu_pct"]).unwrap_or(f64::NAN),
            );
            out.push(format!(
                "Scale ({n} instances): master under 10% of a core and at least 5× below keepalived: {}; {am:.2}% against {km:.2}% ({:.1}×)",
                verdict(am < 10.0 && km / am >= 5.0),
                km / am
            ));
            out.push(format!(
                "Scale ({n} instances): backup at least 20× below keepalived: {}; {ab:.3}% against {kb:.3}% ({:.1}×)",
                verdict(kb / ab >= 20.0),
                kb / ab
            ));
        }
        Some(k) if !held(k) => {
            out.push(format!(
                "Scale ({n} instances): master under 10% of a core: {}; {am:.2}%; keepalived's election did not hold at this count ({} MASTER entries on its backup): no ratio",
                verdict(am < 10.0),
                f(k, &["false_masters"]).unwrap_or(f64::NAN)
            ));
        }
        _ => out.push(format!(
            "Scale ({n} instances): master under 10% of a core: {}; {am:.2}% (backup {ab:.3}%){}",
            verdict(am < 10.0 && held(a)),
            if held(a) { "" } else { "; the agent's election did not hold" }
        )),
    }
    if let (Some(last), Some(mdi)) = (f(a, &["failover", "last_vip_ms"]), f(a, &["mdi_ms"])) {
        let all = f(a, &["failover", "all_polled_ms"]).unwrap_or(f64::NAN);
        out.push(format!(
            "Scale ({n} instances): after the master is killed, every instance MASTER with its VIP within Master_Down_Interval + 50 ms ({:.1} ms) of the kill: {}; last VIP added {last:.1} ms, all seen by polling {all:.0} ms",
            mdi + 50.0,
            verdict(last <= mdi + 50.0)
        ));
    }
    if let Some(rss) = f(a, &["backup_rss_max_kib"]) {
        let master = f(a, &["master_rss_max_kib"]).unwrap_or(f64::NAN);
        // NaN (no failover measured) is not under the target.
        let taken = f(a, &["taken_over_rss_max_kib"]).unwrap_or(f64::NAN);
        out.push(format!(
            "Scale ({n} instances): RSS under 32 MiB per process: {}; backup's largest {:.1} MiB, master's {:.1} MiB, the backup's after it took over every instance {:.1} MiB",
            verdict(rss < 32.0 * 1024.0 && master < 32.0 * 1024.0 && taken < 32.0 * 1024.0),
            rss / 1024.0,
            master / 1024.0,
            taken / 1024.0
        ));
    }
    if let Some(ms) = f(a, &["start_to_backup_ms"]) {
        let kms = k.and_then(|k| f(k, &["start_to_backup_ms"])).unwrap_or(f64::NAN);
        out.push(format!(
            "Scale ({n} instances): start to BACKUP under 1 s: {}; {ms:.0} ms (keepalived {kms:.0} ms)",
            verdict(ms < 1000.0)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(agent: f64, keepalived: f64) -> Value {
        let row = |arm: &str, n: u16, median: f64| serde_json::json!({ "arm": arm, "instances": n, "summary_ms": { "median": median } });
        serde_json::json!({ "startup": [
            row("vrrp-agent", 1, agent),
            row("keepalived", 1, keepalived),
            // Other counts do not decide the one-instance target.
            row("vrrp-agent", 250, 900.0),
            row("keepalived", 250, 10.0),
        ] })
    }

    #[test]
    fn startup_target_compares_the_one_instance_medians() {
        let met = judge(&startup(20.0, 22.5));
        assert_eq!(met.len(), 1);
        assert!(
            met[0].starts_with("Start to BACKUP with one instance") && met[0].contains(": met;"),
            "{met:?}"
        );
        let missed = judge(&startup(30.0, 20.0));
        assert!(missed[0].contains("**missed** (by 10.0 ms, 1.50×)"), "{missed:?}");
    }
}

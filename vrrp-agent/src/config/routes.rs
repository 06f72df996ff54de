//! `virtual_routes`, `virtual_rules`, `static_routes` and `static_rules`:
//! one line per route or rule, in the words of `ip route add` and `ip rule
//! add`, parsed as keepalived 2.2.7 does (keepalived/vrrp/vrrp_iproute.c
//! `alloc_route`, vrrp_iprule.c `alloc_rule`). Options keepalived accepts
//! and vrrp-agent does not apply are warnings that say what is lost.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::lexer::Loc;
use super::model::Report;
use super::tree::Stmt;

/// keepalived's protocol number for what it installs (RTPROT_KEEPALIVED,
/// vrrp_iproute.h): a tracked route or rule carries it, so that the
/// netlink events of our own routes can be told from anyone else's.
pub const RTPROT_KEEPALIVED: u8 = 18;

/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;

/// keepalived numbers rules without a preference from here down, IPv4 and
/// IPv6 apart, in file order (vrrp_iprule.c RULE_START_PRIORITY), so that
/// rules added and removed in any order keep their relative order.
pub const RULE_START_PRIORITY: u32 = 16384;

/// One `nexthop` of a multipath route (or the two addresses of keepalived's
/// older `via A or B`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// `via ADDRESS`.
    pub via: Option<IpAddr>,
    /// `dev IFACE`.
    pub dev: Option<String>,
    /// `weight N` (1-256, default 1).
    pub weight: u16,
    /// `onlink`.
    pub onlink: bool,
}

/// A route of `virtual_routes` or `static_routes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Destination network (`default` is the zero network).
    pub dst: IpAddr,
    /// Its prefix length.
    pub dst_len: u8,
    /// Route type (RTN_*): unicast, or `blackhole`, `unreachable`,
    /// `prohibit`, `throw`, `local`, `broadcast`, `anycast`.
    pub kind: u8,
    /// `src ADDRESS`: the preferred source address.
    pub src: Option<IpAddr>,
    /// `via ADDRESS` (or `gw`).
    pub via: Option<IpAddr>,
    /// `dev IFACE` (or `oif`).
    pub dev: Option<String>,
    /// `nexthop ...` / `or ADDRESS`.
    pub nexthops: Vec<NextHop>,
    /// `table N|NAME` (default main).
    pub table: u32,
    /// `metric N` (or `priority`, `preference`).
    pub metric: Option<u32>,
    /// `scope SCOPE` (default universe, as keepalived).
    pub scope: Option<u8>,
    /// `protocol N|NAME` (default keepalived's, 18).
    pub protocol: u8,
    /// `tos N` (or `dsfield`).
    pub tos: u8,
    /// `onlink`.
    pub onlink: bool,
    /// `no_track`: not put back if someone deletes it.
    pub no_track: bool,
    /// Where it is written.
    pub loc: Loc,
}

/// What a rule does (FR_ACT_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleAction {
    /// `table N`: look the packet up in that table.
    Table(u32),
    /// `goto N`: continue at the rule of preference N.
    Goto(u32),
    /// `nop`.
    Nop,
    /// `blackhole`.
    Blackhole,
    /// `unreachable`.
    Unreachable,
    /// `prohibit`.
    Prohibit,
}

/// A rule of `virtual_rules` or `static_rules`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// `from PREFIX` (`all` is none).
    pub from: Option<(IpAddr, u8)>,
    /// `to PREFIX`.
    pub to: Option<(IpAddr, u8)>,
    /// What it does.
    pub action: RuleAction,
    /// `preference N` (or `priority`, `order`); keepalived's numbering
    /// from 16384 down when not given.
    pub priority: u32,
    /// `fwmark MARK[/MASK]`.
    pub fwmark: Option<(u32, Option<u32>)>,
    /// `iif IFACE` (or `dev`).
    pub iif: Option<String>,
    /// `oif IFACE`.
    pub oif: Option<String>,
    /// `tos N`.
    pub tos: u8,
    /// `not`.
    pub invert: bool,
    /// `no_track`: not put back if someone deletes it.
    pub no_track: bool,
    /// Where it is written.
    pub loc: Loc,
}

/// The next preference for a rule that has none, per family.
#[derive(Clone, Copy, Debug)]
pub struct RulePriorities {
    v4: u32,
    v6: u32,
}

impl Default for RulePriorities {
    fn default() -> RulePriorities {
        RulePriorities { v4: RULE_START_PRIORITY, v6: RULE_START_PRIORITY }
    }
}

/// The words of a line: its keyword and its arguments, with locations.
fn words(s: &Stmt) -> Vec<(&str, &Loc)> {
    std::iter::once((s.key.as_str(), &s.loc)).chain(s.args.iter().map(|(a, l)| (a.as_str(), l))).collect()
}

/// The word after `w[*i]` (keyword `k`), moving `i` onto it; an error
/// with `hint` if the line ends there.
fn value<'a>(
    w: &[(&'a str, &'a Loc)],
    i: &mut usize,
    what: &str,
    hint: &str,
    r: &mut Report,
) -> Option<(&'a str, &'a Loc)> {
    let (k, loc) = w[*i];
    *i += 1;
    let v = w.get(*i).copied();
    if v.is_none() {
        r.error(loc, format!("{what}: `{k}` needs a value"), hint);
    }
    v
}

/// Take `v6` as the line's family, or report `mixed` at `loc` (with
/// `hint`) when the line already has the other one; false then.
fn one_family(
    family: &mut Option<bool>,
    v6: bool,
    loc: &Loc,
    mixed: String,
    hint: &str,
    r: &mut Report,
) -> bool {
    if family.is_some_and(|f| f != v6) {
        r.error(loc, mixed, hint);
        return false;
    }
    *family = Some(v6);
    true
}

/// An address, or a network `ADDRESS/LEN`; `default`, `any` and `all` are
/// the zero network of a family not yet known (None).
fn prefix(v: &str) -> Result<Option<(IpAddr, u8)>, String> {
    if matches!(v, "default" | "any" | "all") {
        return Ok(None);
    }
    let (a, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| format!("`{v}` is not an address or network"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("`{v}`: prefix length must be 0-{max}")),
        },
    };
    Ok(Some((addr, len)))
}

fn zero(v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) }
}

/// A name or number of /etc/iproute2/`file` (rt_tables, rt_protos,
/// rt_scopes), with the kernel's own names first, as iproute2 reads them.
fn named(v: &str, builtin: &[(&str, u32)], file: &str, max: u32) -> Option<u32> {
    if let Some(n) = parse_u32(v) {
        return (n <= max).then_some(n);
    }
    if let Some((_, n)) = builtin.iter().find(|(name, _)| *name == v) {
        return Some(*n);
    }
    for dir in ["/etc/iproute2", "/usr/share/iproute2", "/usr/lib/iproute2"] {
        let Ok(text) = std::fs::read_to_string(format!("{dir}/{file}")) else { continue };
        for line in text.lines() {
            let mut it = line.split('#').next().unwrap_or("").split_whitespace();
            if let (Some(n), Some(name)) = (it.next(), it.next())
                && name == v
                && let Some(n) = parse_u32(n).filter(|n| *n <= max)
            {
                return Some(n);
            }
        }
    }
    None
}

/// Decimal or 0x-hex, as strtoul with base 0 reads them.
fn parse_u32(v: &str) -> Option<u32> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// `table` of a route or rule.
pub fn table(v: &str) -> Option<u32> {
    named(v, &[("main", 254), ("local", 255), ("default", 253), ("unspec", 0)], "rt_tables", u32::MAX)
}

fn protocol(v: &str) -> Option<u8> {
    let builtin = [
        ("unspec", 0),
        ("redirect", 1),
        ("kernel", 2),
        ("boot", 3),
        ("static", 4),
        ("keepalived", 18),
        ("bird", 12),
        ("zebra", 11),
        ("dhcp", 16),
        ("babel", 42),
        ("bgp", 186),
        ("isis", 187),
        ("ospf", 188),
        ("rip", 189),
        ("eigrp", 192),
    ];
    named(v, &builtin, "rt_protos", 255).map(|n| n as u8)
}

/// RT_SCOPE_* of a name or number.
pub fn scope(v: &str) -> Option<u8> {
    let builtin =
        [("global", 0), ("universe", 0), ("site", 200), ("link", 253), ("host", 254), ("nowhere", 255)];
    named(v, &builtin, "rt_scopes", 255).map(|n| n as u8)
}

/// RTN_* of a route type keyword.
fn route_type(v: &str) -> Option<u8> {
    Some(match v {
        "unicast" => 1,
        "local" => 2,
        "broadcast" => 3,
        "anycast" => 4,
        "blackhole" => 6,
        "unreachable" => 7,
        "prohibit" => 8,
        "throw" => 9,
        _ => return None,
    })
}

/// Route options keepalived accepts that vrrp-agent does not apply, with
/// how many values follow them (`lock` may come before one), and what the
/// route loses.
const ROUTE_UNSUPPORTED: &[(&str, usize, &str)] = &[
    ("mtu", 1, "the route's path MTU"),
    ("hoplimit", 1, "the route's hop limit"),
    ("advmss", 1, "the route's advertised MSS"),
    ("rtt", 1, "the route's RTT estimate"),
    ("rttvar", 1, "the route's RTT variance"),
    ("reordering", 1, "the route's reordering metric"),
    ("window", 1, "the route's TCP window clamp"),
    ("cwnd", 1, "the route's congestion window clamp"),
    ("ssthresh", 1, "the route's slow-start threshold"),
    ("realms", 1, "the route's realm"),
    ("rto_min", 1, "the route's minimum retransmission timeout"),
    ("initcwnd", 1, "the route's initial congestion window"),
    ("initrwnd", 1, "the route's initial receive window"),
    ("features", 1, "the route's ECN feature"),
    ("quickack", 1, "the route's quickack setting"),
    ("congctl", 1, "the route's congestion control algorithm"),
    ("pref", 1, "the IPv6 route's router preference"),
    ("expires", 1, "the route's expiry (it stays until the agent removes it)"),
    ("encap", 2, "the route's lightweight tunnel encapsulation (the route is added without it)"),
    ("ttl-propagate", 1, "the route's MPLS TTL propagation"),
    ("fastopen_no_cookie", 1, "the route's TCP fast open setting"),
    ("from", 1, "the IPv6 source-specific match (the route applies to every source)"),
    ("vrf", 1, "the VRF table (the route goes to the `table` given, else main)"),
    ("track_group", 1, "the track group (the route is not tied to the group's interfaces)"),
    ("as", 1, "the MPLS `as to` address"),
    ("append", 0, "append order (the route is prepended, keepalived's default)"),
];

/// Parse one route line. `what` names the block for messages.
pub fn route(s: &Stmt, what: &str, r: &mut Report) -> Option<Route> {
    let w = words(s);
    let mut family: Option<bool> = None;
    let mut rt = Route {
        v6: false,
        dst: zero(false),
        dst_len: 0,
        kind: 1,
        src: None,
        via: None,
        dev: None,
        nexthops: Vec::new(),
        table: RT_TABLE_MAIN,
        metric: None,
        scope: None,
        protocol: RTPROT_KEEPALIVED,
        tos: 0,
        onlink: false,
        no_track: false,
        loc: s.loc.clone(),
    };
    let mut dst: Option<Option<(IpAddr, u8)>> = None;
    let mut protocol_set = false;
    let mut bad = false;
    // The family of an address must agree with the rest of the line.
    let agree = |fam: &mut Option<bool>, a: IpAddr, loc: &Loc, r: &mut Report| -> bool {
        one_family(
            fam,
            a.is_ipv6(),
            loc,
            format!("{what}: cannot mix IPv4 and IPv6 in one route"),
            "one family per route",
            r,
        )
    };
    let mut i = 0;
    while i < w.len() {
        let (k, loc) = w[i];
        let next =
            |i: &mut usize, r: &mut Report| value(&w, i, what, "see keepalived.conf(5), static_routes", r);
        match k {
            "inet" | "inet6" => {
                let mixed = format!("{what}: `{k}` contradicts the route's addresses");
                bad |= !one_family(&mut family, k == "inet6", loc, mixed, "one family per route", r);
            }
            "src" | "via" | "gw" => {
                let (v, vl) = next(&mut i, r)?;
                let v = if matches!(v, "inet" | "inet6") && k != "src" {
                    let (v2, _) = next(&mut i, r)?;
                    v2
                } else {
                    v
                };
                match v.parse::<IpAddr>() {
                    Ok(a) => {
                        bad |= !agree(&mut family, a, vl, r);
                        if k == "src" {
                            rt.src = Some(a);
                        } else {
                            rt.via = Some(a);
                        }
                    }
                    Err(_) => {
                        r.error(
                            vl,
                            format!("{what}: invalid route {k} address `{v}`"),
                            "an IPv4 or IPv6 address",
                        );
                        bad = true;
                    }
                }
            }
            "dev" | "oif" => rt.dev = next(&mut i, r).map(|(v, _)| v.to_owned()),
            "table" => {
                let (v, vl) = next(&mut i, r)?;
                match table(v) {
                    Some(t) => rt.table = t,
                    None => {
                        r.error(
                            vl,
                            format!("{what}: routing table `{v}` not found"),
                            "a number, or a name of /etc/iproute2/rt_tables",
                        );
                        bad = true;
                    }
                }
            }
            "metric" | "priority" | "preference" => {
                let (v, vl) = next(&mut i, r)?;
                match v.parse::<u32>() {
                    Ok(m) => rt.metric = Some(m),
                    Err(_) => {
                        r.error(vl, format!("{what}: invalid metric `{v}`"), "a number 0-4294967295");
                        bad = true;
                    }
                }
            }
            "scope" => {
                let (v, vl) = next(&mut i, r)?;
                match scope(v) {
                    Some(sc) => rt.scope = Some(sc),
                    None => {
                        r.error(
                            vl,
                            format!("{what}: unknown scope `{v}`"),
                            "global, site, link, host, nowhere or a number",
                        );
                        bad = true;
                    }
                }
            }
            "protocol" | "proto" => {
                let (v, vl) = next(&mut i, r)?;
                match protocol(v) {
                    Some(p) => {
                        rt.protocol = p;
                        protocol_set = true;
                    }
                    None => {
                        r.error(
                            vl,
                            format!("{what}: unknown protocol `{v}`"),
                            "a number 0-255, or a name of /etc/iproute2/rt_protos",
                        );
                        bad = true;
                    }
                }
            }
            "tos" | "dsfield" => {
                let (v, vl) = next(&mut i, r)?;
                match parse_u32(v).filter(|t| *t <= 255) {
                    Some(t) => rt.tos = t as u8,
                    None => {
                        r.error(vl, format!("{what}: invalid TOS `{v}`"), "a number 0-255 (0x.. for hex)");
                        bad = true;
                    }
                }
            }
            "onlink" => rt.onlink = true,
            "no_track" => rt.no_track = true,
            // iproute2's default (`ip route add`) and the kernel's
            // (keepalived's default): both add the route before any other
            // of the same destination.
            "add" | "prepend" => {}
            "or" => {
                // keepalived before 2.0.8: `via A or B` is a multipath
                // route over A and B (vrrp_iproute.c moves `via` into the
                // first nexthop).
                let (v, vl) = next(&mut i, r)?;
                match v.parse::<IpAddr>() {
                    Ok(b) if rt.nexthops.is_empty() => {
                        bad |= !agree(&mut family, b, vl, r);
                        let first = NextHop { via: rt.via.take(), dev: None, weight: 1, onlink: false };
                        rt.nexthops =
                            vec![first, NextHop { via: Some(b), dev: None, weight: 1, onlink: false }];
                    }
                    Ok(_) => r.warn(
                        vl,
                        format!("{what}: a second `or` ignored"),
                        "keepalived ignores it too; use `nexthop` for more paths",
                    ),
                    Err(_) => {
                        r.error(vl, format!("{what}: invalid `or` address `{v}`"), "an IPv4 or IPv6 address");
                        bad = true;
                    }
                }
            }
            "nexthop" => {
                if !rt.nexthops.is_empty() {
                    r.error(loc, format!("{what}: `nexthop` with `or`"), "use one or the other");
                    return None;
                }
                match nexthops(&w[i..], what, &mut family, r) {
                    Some(n) => rt.nexthops = n,
                    None => bad = true,
                }
                i = w.len();
                continue;
            }
            other => {
                if let Some((_, n, lost)) = ROUTE_UNSUPPORTED.iter().find(|(name, _, _)| *name == other) {
                    r.warn(
                        loc,
                        format!("{what}: route option `{other}` not supported"),
                        format!("the route is added without {lost}"),
                    );
                    for _ in 0..*n {
                        i += 1;
                        if w.get(i).is_some_and(|(v, _)| *v == "lock" || *v == "to") {
                            i += 1;
                        }
                    }
                    i += 1;
                    continue;
                }
                // The destination, perhaps after `to` and a route type.
                let mut v = other;
                let mut vl = loc;
                if v == "to" {
                    let (nv, nl) = next(&mut i, r)?;
                    (v, vl) = (nv, nl);
                }
                if let Some(t) = route_type(v) {
                    rt.kind = t;
                    let (nv, nl) = next(&mut i, r)?;
                    (v, vl) = (nv, nl);
                } else if matches!(v, "nat" | "xresolve" | "multicast") {
                    r.error(
                        vl,
                        format!("{what}: route type `{v}` not supported"),
                        "unicast, local, broadcast, anycast, blackhole, unreachable, prohibit or throw",
                    );
                    return None;
                }
                if v == "default6" {
                    family = Some(true);
                    dst = Some(None);
                } else {
                    match prefix(v) {
                        Ok(p) => {
                            if let Some((a, _)) = p {
                                bad |= !agree(&mut family, a, vl, r);
                            }
                            dst = Some(p);
                        }
                        Err(e) => {
                            r.error(
                                vl,
                                format!("{what}: unknown route keyword or bad destination: {e}"),
                                "ADDRESS/LEN [via ADDRESS] [dev IFACE] [table N] ..., as `ip route add`",
                            );
                            return None;
                        }
                    }
                }
            }
        }
        i += 1;
    }
    let Some(d) = dst else {
        r.error(
            &s.loc,
            format!("{what}: the route has no destination"),
            "as in `192.0.2.0/24 via 198.51.100.1`",
        );
        return None;
    };
    if bad {
        return None;
    }
    rt.v6 = family.unwrap_or(false);
    (rt.dst, rt.dst_len) = d.unwrap_or((zero(rt.v6), 0));
    if rt.no_track && !protocol_set {
        // keepalived still marks it as its own (vrrp_iproute.c netlink_route).
        rt.protocol = RTPROT_KEEPALIVED;
    } else if !rt.no_track && protocol_set && rt.protocol != RTPROT_KEEPALIVED {
        r.warn(
            &s.loc,
            format!("{what}: a tracked route has protocol keepalived ({RTPROT_KEEPALIVED})"),
            "keepalived resets it too; add `no_track` to keep your protocol",
        );
        rt.protocol = RTPROT_KEEPALIVED;
    }
    Some(rt)
}

/// `nexthop via A dev D weight W onlink nexthop ...`, from `w[0] ==
/// "nexthop"` to the end of the line.
fn nexthops(
    w: &[(&str, &Loc)],
    what: &str,
    family: &mut Option<bool>,
    r: &mut Report,
) -> Option<Vec<NextHop>> {
    let mut out: Vec<NextHop> = Vec::new();
    let mut i = 0;
    while i < w.len() {
        let (k, loc) = w[i];
        let mut val = |i: &mut usize| value(w, i, what, "nexthop via ADDRESS dev IFACE weight N onlink", r);
        match (k, out.last_mut()) {
            ("nexthop", _) => out.push(NextHop { via: None, dev: None, weight: 1, onlink: false }),
            ("via", Some(nh)) => {
                let (mut v, mut vl) = val(&mut i)?;
                if matches!(v, "inet" | "inet6") {
                    (v, vl) = val(&mut i)?;
                }
                let Ok(a) = v.parse::<IpAddr>() else {
                    r.error(vl, format!("{what}: invalid nexthop address `{v}`"), "an IPv4 or IPv6 address");
                    return None;
                };
                let mixed = format!("{what}: cannot mix IPv4 and IPv6 in one route");
                if !one_family(family, a.is_ipv6(), vl, mixed, "one family per route", r) {
                    return None;
                }
                nh.via = Some(a);
            }
            ("dev", Some(nh)) => nh.dev = Some(val(&mut i)?.0.to_owned()),
            ("weight", Some(nh)) => {
                let (v, vl) = val(&mut i)?;
                match v.parse::<u16>() {
                    Ok(n) if (1..=256).contains(&n) => nh.weight = n,
                    _ => {
                        r.error(vl, format!("{what}: invalid nexthop weight `{v}`"), "1-256");
                        return None;
                    }
                }
            }
            ("onlink", Some(nh)) => nh.onlink = true,
            ("realms" | "encap", Some(_)) => {
                r.warn(
                    loc,
                    format!("{what}: nexthop option `{k}` not supported"),
                    format!("the nexthop is added without its {k}"),
                );
                i += if k == "encap" { 2 } else { 1 };
            }
            _ => {
                r.error(
                    loc,
                    format!("{what}: route has trailing nonsense after nexthops: `{k}`"),
                    "nexthop via ADDRESS dev IFACE weight N onlink",
                );
                return None;
            }
        }
        i += 1;
    }
    Some(out)
}

/// Parse one rule line. Rules without a preference are numbered as
/// keepalived numbers them (`next`), with its warning.
pub fn rule(s: &Stmt, what: &str, next: &mut RulePriorities, r: &mut Report) -> Option<Rule> {
    let w = words(s);
    let mut family: Option<bool> = None;
    let mut action: Option<RuleAction> = None;
    let mut priority = None;
    let mut rl = Rule {
        v6: false,
        from: None,
        to: None,
        action: RuleAction::Nop,
        priority: 0,
        fwmark: None,
        iif: None,
        oif: None,
        tos: 0,
        invert: false,
        no_track: false,
        loc: s.loc.clone(),
    };
    let mut set_action = |a: RuleAction, loc: &Loc, r: &mut Report| -> bool {
        if action.is_some() {
            r.error(
                loc,
                format!("{what}: more than one of table/goto/nop/blackhole/unreachable/prohibit"),
                "one action per rule",
            );
            return false;
        }
        action = Some(a);
        true
    };
    let mut i = 0;
    while i < w.len() {
        let (k, loc) = w[i];
        let val =
            |i: &mut usize, r: &mut Report| value(&w, i, what, "see keepalived.conf(5), static_rules", r);
        match k {
            "inet" | "inet6" => {
                let mixed = format!("{what}: `{k}` contradicts the rule's addresses");
                if !one_family(&mut family, k == "inet6", loc, mixed, "one family per rule", r) {
                    return None;
                }
            }
            "from" | "to" => {
                let (v, vl) = val(&mut i, r)?;
                match prefix(v) {
                    Ok(p) => {
                        if let Some((a, _)) = p
                            && !one_family(
                                &mut family,
                                a.is_ipv6(),
                                vl,
                                format!("{what}: rule mixes IPv4 and IPv6"),
                                "one family per rule",
                                r,
                            )
                        {
                            return None;
                        }
                        if k == "from" {
                            rl.from = p;
                        } else {
                            rl.to = p;
                        }
                    }
                    Err(e) => {
                        r.error(
                            vl,
                            format!("{what}: invalid rule {k} address: {e}"),
                            "ADDRESS or ADDRESS/LEN, such as 192.0.2.0/24",
                        );
                        return None;
                    }
                }
            }
            "table" | "lookup" => {
                let (v, vl) = val(&mut i, r)?;
                match table(v) {
                    Some(0) | None => {
                        r.error(
                            vl,
                            format!("{what}: routing table `{v}` not found or 0"),
                            "a number 1-4294967295, or a name of /etc/iproute2/rt_tables",
                        );
                        return None;
                    }
                    Some(t) => {
                        if !set_action(RuleAction::Table(t), vl, r) {
                            return None;
                        }
                    }
                }
            }
            "not" => rl.invert = true,
            "preference" | "order" | "priority" => {
                let (v, vl) = val(&mut i, r)?;
                match parse_u32(v) {
                    Some(p) => priority = Some(p),
                    None => {
                        r.error(
                            vl,
                            format!("{what}: invalid rule preference `{v}`"),
                            "a number 0-4294967295",
                        );
                        return None;
                    }
                }
            }
            "tos" | "dsfield" => {
                let (v, vl) = val(&mut i, r)?;
                match parse_u32(v).filter(|t| *t <= 255) {
                    Some(t) => rl.tos = t as u8,
                    None => {
                        r.error(vl, format!("{what}: invalid TOS `{v}`"), "a number 0-255 (0x.. for hex)");
                        return None;
                    }
                }
            }
            "fwmark" => {
                let (v, vl) = val(&mut i, r)?;
                let parsed = match v.split_once('/') {
                    Some((m, k)) => parse_u32(m).zip(parse_u32(k)).map(|(m, k)| (m, Some(k))),
                    None => parse_u32(v).map(|m| (m, None)),
                };
                match parsed {
                    Some(f) => rl.fwmark = Some(f),
                    None => {
                        r.error(
                            vl,
                            format!("{what}: invalid rule fwmark `{v}`"),
                            "MARK or MARK/MASK, decimal or 0x-hex",
                        );
                        return None;
                    }
                }
            }
            "dev" | "iif" => rl.iif = Some(val(&mut i, r)?.0.to_owned()),
            "oif" => rl.oif = Some(val(&mut i, r)?.0.to_owned()),
            "no_track" => rl.no_track = true,
            "goto" => {
                let (v, vl) = val(&mut i, r)?;
                let Some(t) = parse_u32(v) else {
                    r.error(
                        vl,
                        format!("{what}: invalid goto target `{v}`"),
                        "the preference of another rule",
                    );
                    return None;
                };
                if !set_action(RuleAction::Goto(t), vl, r) {
                    return None;
                }
            }
            "type" => {}
            "nop" | "blackhole" | "unreachable" | "prohibit" => {
                let a = match k {
                    "nop" => RuleAction::Nop,
                    "blackhole" => RuleAction::Blackhole,
                    "unreachable" => RuleAction::Unreachable,
                    _ => RuleAction::Prohibit,
                };
                if !set_action(a, loc, r) {
                    return None;
                }
            }
            "realms"
            | "suppress_prefixlength"
            | "sup_pl"
            | "suppress_ifgroup"
            | "sup_group"
            | "tunnel-id"
            | "uidrange"
            | "protocol"
            | "ipproto"
            | "sport"
            | "dport"
            | "track_group" => {
                let _ = val(&mut i, r);
                r.warn(
                    loc,
                    format!("{what}: rule option `{k}` not supported"),
                    format!("the rule is added without its `{k}` (it matches more, or differently, than configured)"),
                );
            }
            "l3mdev" => {
                r.warn(
                    loc,
                    format!("{what}: rule option `l3mdev` not supported"),
                    "the rule is added without the VRF lookup",
                );
            }
            other => {
                r.error(loc, format!("{what}: unknown rule option `{other}`"), "from, to, table, preference, fwmark, iif, oif, tos, not, goto, nop, blackhole, unreachable, prohibit, no_track");
                return None;
            }
        }
        i += 1;
    }
    let Some(action) = action else {
        r.error(
            &s.loc,
            format!("{what}: the rule has no action"),
            "add `table N` (or goto, nop, blackhole, unreachable, prohibit)",
        );
        return None;
    };
    rl.action = action;
    rl.v6 = family.unwrap_or(false);
    rl.priority = match priority {
        Some(p) => p,
        None => {
            let slot = if rl.v6 { &mut next.v6 } else { &mut next.v4 };
            let p = *slot;
            *slot = slot.saturating_sub(1);
            r.warn(
                &s.loc,
                format!("{what}: rule has no preference: given {p}, as keepalived numbers them"),
                "add `preference N` to choose the order among the rules yourself",
            );
            p
        }
    };
    if let RuleAction::Goto(t) = rl.action
        && (priority.is_none() || rl.priority >= t)
    {
        r.error(
            &s.loc,
            format!("{what}: goto target {t} must be after the rule's preference {}", rl.priority),
            "give the rule a lower preference than its target",
        );
        return None;
    }
    Some(rl)
}

//! Routes and rules on and off, through rtnetlink: the messages for
//! `virtual_routes`, `virtual_rules`, `static_routes` and `static_rules`,
//! the keys the reconciler (`reconcile.rs`) knows them by, and the dumps
//! and events that say what the kernel has. What to add and remove is the
//! reconciler's decision.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::Handle;
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop, RouteNextHopFlags,
    RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAction as NlAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::config::routes::{RTPROT_KEEPALIVED, Route, Rule, RuleAction};
use crate::daemon::reconcile::{Outcome, RouteKey, RuleKey};

/// `addr` with the bits past `len` cleared: the kernel keeps networks
/// masked, so keys compare equal whatever the configuration wrote.
pub fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// The kernel's metric for a route configured without one: IPv6 routes
/// get 1024 (IP6_RT_PRIO_USER), IPv4 ones 0.
fn default_metric(v6: bool) -> u32 {
    if v6 { 1024 } else { 0 }
}

/// The key of a configured route.
pub fn route_key(r: &Route) -> RouteKey {
    RouteKey {
        v6: r.v6,
        table: r.table,
        dst: masked(r.dst, r.dst_len),
        dst_len: r.dst_len,
        tos: r.tos,
        // IPv6 takes metric 0 for "none" too (net/ipv6/route.c).
        metric: r.metric.filter(|m| *m != 0 || !r.v6).unwrap_or(default_metric(r.v6)),
    }
}

/// The key of a configured rule.
pub fn rule_key(r: &Rule) -> RuleKey {
    // The kernel keeps no selector for a zero-length network, and a mark
    // without a mask gets the all-ones mask (net/core/fib_rules.c).
    let net = |p: Option<(IpAddr, u8)>| p.filter(|(_, l)| *l > 0).map(|(a, l)| (masked(a, l), l));
    let fwmark = match r.fwmark {
        None => (0, 0),
        Some((m, Some(k))) => (m, k),
        Some((m, None)) => (m, if m != 0 { u32::MAX } else { 0 }),
    };
    RuleKey {
        v6: r.v6,
        priority: r.priority,
        action: r.action,
        from: net(r.from),
        to: net(r.to),
        fwmark,
        iif: r.iif.clone(),
        oif: r.oif.clone(),
        tos: r.tos,
        invert: r.invert,
    }
}

fn family(v6: bool) -> AddressFamily {
    if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// The key of a route the kernel reported; None for other families.
pub fn route_key_of(m: &RouteMessage) -> Option<RouteKey> {
    let v6 = match m.header.address_family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut metric = 0;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    let len = m.header.destination_prefix_length;
    let dst =
        dst.unwrap_or(if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) });
    Some(RouteKey { v6, table, dst: masked(dst, len), dst_len: len, tos: m.header.tos, metric })
}

/// The key of a rule the kernel reported; None for other families and
/// actions we never install.
pub fn rule_key_of(m: &RuleMessage) -> Option<RuleKey> {
    let v6 = match m.header.family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    let mut table = u32::from(m.header.table);
    let (mut priority, mut goto, mut mark, mut mask) = (0, 0, 0, 0);
    let (mut from, mut to, mut iif, mut oif) = (None, None, None, None);
    for a in &m.attributes {
        match a {
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Goto(g) => goto = *g,
            RuleAttribute::FwMark(v) => mark = *v,
            RuleAttribute::FwMask(v) => mask = *v,
            RuleAttribute::Source(s) => from = Some(*s),
            RuleAttribute::Destination(d) => to = Some(*d),
            RuleAttribute::Iifname(n) => iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => oif = Some(n.clone()),
            _ => {}
        }
    }
    let action = match m.header.action {
        NlAction::ToTable => RuleAction::Table(table),
        NlAction::Goto => RuleAction::Goto(goto),
        NlAction::Nop => RuleAction::Nop,
        NlAction::Blackhole => RuleAction::Blackhole,
        NlAction::Unreachable => RuleAction::Unreachable,
        NlAction::Prohibit => RuleAction::Prohibit,
        _ => return None,
    };
    let net = |a: Option<IpAddr>, l: u8| a.filter(|_| l > 0).map(|a| (masked(a, l), l));
    Some(RuleKey {
        v6,
        priority,
        action,
        from: net(from, m.header.src_len),
        to: net(to, m.header.dst_len),
        fwmark: (mark, mask),
        iif,
        oif,
        tos: m.header.tos,
        invert: m.header.flags.contains(RuleFlags::Invert),
    })
}

/// A route's interfaces that do not exist now (its `dev` and its
/// nexthops'); the route cannot be added until they do.
pub fn missing_devs(r: &Route) -> Vec<&str> {
    r.dev
        .iter()
        .chain(r.nexthops.iter().filter_map(|n| n.dev.as_ref()))
        .map(String::as_str)
        .filter(|d| nix::net::if_::if_nametoindex(*d).is_err())
        .collect()
}

fn ifindex(name: &str) -> u32 {
    nix::net::if_::if_nametoindex(name).unwrap_or(0)
}

/// The header fields every route message of `key` carries.
fn route_header(key: &RouteKey) -> (RouteMessage, Vec<RouteAttribute>) {
    let mut m = RouteMessage::default();
    m.header.address_family = family(key.v6);
    m.header.destination_prefix_length = key.dst_len;
    m.header.tos = key.tos;
    let mut attrs = vec![RouteAttribute::Destination(key.dst.into())];
    // Tables past 255 only fit the attribute (keepalived does the same).
    match u8::try_from(key.table) {
        Ok(t) if t != RouteHeader::RT_TABLE_UNSPEC => m.header.table = t,
        _ => {
            m.header.table = RouteHeader::RT_TABLE_UNSPEC;
            attrs.push(RouteAttribute::Table(key.table));
        }
    }
    attrs.push(RouteAttribute::Priority(key.metric));
    (m, attrs)
}

/// The message that adds `r` (its devices resolved now).
pub fn route_message(r: &Route) -> RouteMessage {
    let key = route_key(r);
    let (mut m, mut attrs) = route_header(&key);
    m.header.protocol = RouteProtocol::from(r.protocol);
    m.header.scope = RouteScope::from(r.scope.unwrap_or(0));
    m.header.kind = RouteType::from(r.kind);
    if r.onlink {
        m.header.flags |= RouteFlags::Onlink;
    }
    if let Some(s) = r.src {
        attrs.push(RouteAttribute::PrefSource(s.into()));
    }
    if let Some(v) = r.via {
        attrs.push(RouteAttribute::Gateway(v.into()));
    }
    if let Some(d) = &r.dev {
        attrs.push(RouteAttribute::Oif(ifindex(d)));
    }
    if !r.nexthops.is_empty() {
        let hops = r
            .nexthops
            .iter()
            .map(|n| {
                let mut h = RouteNextHop::default();
                // rtnh_hops is the weight less one (iproute2 and keepalived).
                h.hops = u8::try_from(n.weight.saturating_sub(1)).unwrap_or(u8::MAX);
                h.interface_index = n.dev.as_deref().map_or(0, ifindex);
                if n.onlink {
                    h.flags |= RouteNextHopFlags::Onlink;
                }
                if let Some(v) = n.via {
                    h.attributes.push(RouteAttribute::Gateway(v.into()));
                }
                h
            })
            .collect();
        attrs.push(RouteAttribute::MultiPath(hops));
    }
    m.attributes = attrs;
    m
}

/// The message that deletes the route of `key` that we installed (our
/// protocol, so someone else's route of the same key stays).
pub fn route_delete_message(key: &RouteKey, protocol: u8) -> RouteMessage {
    let (mut m, attrs) = route_header(key);
    m.header.protocol = RouteProtocol::from(protocol);
    // Any scope matches (keepalived deletes with RT_SCOPE_NOWHERE).
    m.header.scope = RouteScope::NoWhere;
    m.attributes = attrs;
    m
}

/// The message that adds (or deletes) the rule of `key`; `tracked` rules
/// carry keepalived's protocol.
pub fn rule_message(key: &RuleKey, tracked: bool) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = family(key.v6);
    m.header.tos = key.tos;
    if key.invert {
        m.header.flags |= RuleFlags::Invert;
    }
    let mut attrs = vec![RuleAttribute::Priority(key.priority)];
    m.header.action = match key.action {
        RuleAction::Table(t) => {
            m.header.table = u8::try_from(t).unwrap_or(0);
            attrs.push(RuleAttribute::Table(t));
            NlAction::ToTable
        }
        RuleAction::Goto(g) => {
            attrs.push(RuleAttribute::Goto(g));
            NlAction::Goto
        }
        RuleAction::Nop => NlAction::Nop,
        RuleAction::Blackhole => NlAction::Blackhole,
        RuleAction::Unreachable => NlAction::Unreachable,
        RuleAction::Prohibit => NlAction::Prohibit,
    };
    if let Some((a, l)) = key.from {
        m.header.src_len = l;
        attrs.push(RuleAttribute::Source(a));
    }
    if let Some((a, l)) = key.to {
        m.header.dst_len = l;
        attrs.push(RuleAttribute::Destination(a));
    }
    if key.fwmark != (0, 0) {
        attrs.push(RuleAttribute::FwMark(key.fwmark.0));
        attrs.push(RuleAttribute::FwMask(key.fwmark.1));
    }
    if let Some(n) = &key.iif {
        attrs.push(RuleAttribute::Iifname(n.clone()));
    }
    if let Some(n) = &key.oif {
        attrs.push(RuleAttribute::Oifname(n.clone()));
    }
    if tracked {
        attrs.push(RuleAttribute::Protocol(RouteProtocol::from(RTPROT_KEEPALIVED)));
    }
    m.attributes = attrs;
    m
}

/// Send one request and wait for the kernel's answer: Done, AlreadySo
/// (`already` is the error it answers when there is nothing to do), or
/// the error.
async fn request(
    handle: &Handle,
    msg: RouteNetlinkMessage,
    flags: u16,
    already: i32,
) -> Result<Outcome, rtnetlink::Error> {
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = flags;
    let mut handle = handle.clone();
    let run = async move {
        let mut resp = handle.request(req)?;
        while let Some(m) = resp.next().await {
            if let NetlinkPayload::Error(e) = m.payload {
                if e.raw_code() == -already {
                    return Ok(Outcome::AlreadySo);
                }
                if e.code.is_some() {
                    return Err(rtnetlink::Error::NetlinkError(e));
                }
            }
        }
        Ok(Outcome::Done)
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), run)
        .await
        .map_err(|_| rtnetlink::Error::RequestFailed)?
}

/// Add route `m`. Without NLM_F_EXCL: keepalived's default (`prepend`)
/// puts it before any other route of the same destination; an identical
/// route is EEXIST all the same.
pub async fn add_route(handle: &Handle, m: RouteMessage) -> Result<Outcome, rtnetlink::Error> {
    request(handle, RouteNetlinkMessage::NewRoute(m), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, libc::EEXIST)
        .await
}

/// Delete route `m`: Done, or AlreadySo (ESRCH: not there).
pub async fn del_route(handle: &Handle, m: RouteMessage) -> Result<Outcome, rtnetlink::Error> {
    request(handle, RouteNetlinkMessage::DelRoute(m), NLM_F_REQUEST | NLM_F_ACK, libc::ESRCH).await
}

/// Add rule `m`: Done, or AlreadySo (EEXIST).
pub async fn add_rule(handle: &Handle, m: RuleMessage) -> Result<Outcome, rtnetlink::Error> {
    use rtnetlink::packet_core::NLM_F_EXCL;
    request(
        handle,
        RouteNetlinkMessage::NewRule(m),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        libc::EEXIST,
    )
    .await
}

/// Delete rule `m`: Done, or AlreadySo (ENOENT: not there).
pub async fn del_rule(handle: &Handle, m: RuleMessage) -> Result<Outcome, rtnetlink::Error> {
    request(handle, RouteNetlinkMessage::DelRule(m), NLM_F_REQUEST | NLM_F_ACK, libc::ENOENT).await
}

/// Every route the kernel has now (every table, both families), as keys.
pub async fn dump_routes(handle: &Handle) -> Result<Vec<RouteKey>, rtnetlink::Error> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let mut m = RouteMessage::default();
        m.header.address_family = family(v6);
        // Table 0: all of them (the kernel filters by table only when asked).
        m.header.table = RouteHeader::RT_TABLE_UNSPEC;
        let mut s = handle.route().get(m).execute();
        while let Some(r) = s.try_next().await? {
            out.extend(route_key_of(&r));
        }
    }
    Ok(out)
}

/// Every rule the kernel has now, both families, as keys.
pub async fn dump_rules(handle: &Handle) -> Result<Vec<RuleKey>, rtnetlink::Error> {
    use rtnetlink::IpVersion;
    let mut out = Vec::new();
    for v in [IpVersion::V4, IpVersion::V6] {
        let mut s = handle.rule().get(v).execute();
        while let Some(r) = s.try_next().await? {
            out.extend(rule_key_of(&r));
        }
    }
    Ok(out)
}

fn opt_net(n: Option<(IpAddr, u8)>) -> String {
    n.map_or_else(|| "-".to_owned(), |(a, l)| format!("{a}/{l}"))
}

fn parse_net(v: &str) -> Option<Option<(IpAddr, u8)>> {
    if v == "-" {
        return Some(None);
    }
    let (a, l) = v.split_once('/')?;
    Some(Some((a.parse().ok()?, l.parse().ok()?)))
}

/// A route of the crash record: `route 4|6 TABLE DST/LEN TOS METRIC PROTOCOL`.
pub fn route_record(key: &RouteKey, protocol: u8) -> String {
    let fam = if key.v6 { 6 } else { 4 };
    format!("route {fam} {} {}/{} {} {} {protocol}", key.table, key.dst, key.dst_len, key.tos, key.metric)
}

/// Read a `route_record` line back.
pub fn parse_route_record(line: &str) -> Option<(RouteKey, u8)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let [_, fam, table, dst, tos, metric, proto] = w.as_slice() else { return None };
    let (d, l) = dst.split_once('/')?;
    let key = RouteKey {
        v6: *fam == "6",
        table: table.parse().ok()?,
        dst: d.parse().ok()?,
        dst_len: l.parse().ok()?,
        tos: tos.parse().ok()?,
        metric: metric.parse().ok()?,
    };
    Some((key, proto.parse().ok()?))
}

/// A rule of the crash record: `rule 4|6 PREF ACTION FROM TO MARK/MASK IIF
/// OIF TOS INVERT TRACKED` (`-` for none).
pub fn rule_record(key: &RuleKey, tracked: bool) -> String {
    let action = match key.action {
        RuleAction::Table(t) => format!("table:{t}"),
        RuleAction::Goto(g) => format!("goto:{g}"),
        RuleAction::Nop => "nop".into(),
        RuleAction::Blackhole => "blackhole".into(),
        RuleAction::Unreachable => "unreachable".into(),
        RuleAction::Prohibit => "prohibit".into(),
    };
    format!(
        "rule {} {} {action} {} {} {}/{} {} {} {} {} {}",
        if key.v6 { 6 } else { 4 },
        key.priority,
        opt_net(key.from),
        opt_net(key.to),
        key.fwmark.0,
        key.fwmark.1,
        key.iif.as_deref().unwrap_or("-"),
        key.oif.as_deref().unwrap_or("-"),
        key.tos,
        u8::from(key.invert),
        u8::from(tracked)
    )
}

/// Read a `rule_record` line back.
pub fn parse_rule_record(line: &str) -> Option<(RuleKey, bool)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let [_, fam, prio, action, from, to, mark, iif, oif, tos, invert, tracked] = w.as_slice() else {
        return None;
    };
    let action = match action.split_once(':') {
        Some(("table", t)) => RuleAction::Table(t.parse().ok()?),
        Some(("goto", g)) => RuleAction::Goto(g.parse().ok()?),
        _ => match *action {
            "nop" => RuleAction::Nop,
            "blackhole" => RuleAction::Blackhole,
            "unreachable" => RuleAction::Unreachable,
            "prohibit" => RuleAction::Prohibit,
            _ => return None,
        },
    };
    let (m, k) = mark.split_once('/')?;
    let name = |v: &str| (v != "-").then(|| v.to_owned());
    let key = RuleKey {
        v6: *fam == "6",
        priority: prio.parse().ok()?,
        action,
        from: parse_net(from)?,
        to: parse_net(to)?,
        fwmark: (m.parse().ok()?, k.parse().ok()?),
        iif: name(iif),
        oif: name(oif),
        tos: tos.parse().ok()?,
        invert: *invert == "1",
    };
    Some((key, *tracked == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::routes::NextHop;

    fn loc() -> crate::config::lexer::Loc {
        crate::config::lexer::Loc { file: std::sync::Arc::new("t".into()), line: 1, col: 1 }
    }

    fn route(dst: &str, len: u8, v6: bool) -> Route {
        Route {
            v6,
            dst: dst.parse().expect("address"),
            dst_len: len,
            kind: 1,
            src: None,
            via: None,
            dev: None,
            nexthops: Vec::new(),
            table: 100,
            metric: None,
            scope: None,
            protocol: RTPROT_KEEPALIVED,
            tos: 0,
            onlink: false,
            no_track: false,
            loc: loc(),
        }
    }

    /// The key read back from the message we send is the key we want, so
    /// the kernel's event for our own add matches.
    #[test]
    fn a_route_message_reads_back_as_its_key() {
        for r in [
            route("198.51.100.7", 24, false),
            route("2001:db8:1::", 48, true),
            Route { table: 1000, metric: Some(7), ..route("0.0.0.0", 0, false) },
            Route {
                nexthops: vec![NextHop {
                    via: Some("192.0.2.1".parse().expect("a")),
                    dev: None,
                    weight: 2,
                    onlink: true,
                }],
                ..route("203.0.113.0", 24, false)
            },
        ] {
            let m = route_message(&r);
            let key = route_key_of(&m).expect("a key");
            assert_eq!(key, route_key(&r));
            assert_eq!(key.dst, masked(r.dst, r.dst_len), "masked");
        }
        assert_eq!(route_key(&route("2001:db8::", 64, true)).metric, 1024, "the kernel's IPv6 default");
        assert_eq!(route_key(&Route { metric: Some(0), ..route("2001:db8::", 64, true) }).metric, 1024);
        let key = route_key(&route("2001:db8:1::", 48, true));
        assert_eq!(parse_route_record(&route_record(&key, 18)), Some((key, 18)), "crash record");
    }

    #[test]
    fn a_rule_message_reads_back_as_its_key() {
        let base = Rule {
            v6: false,
            from: Some(("203.0.113.9".parse().expect("a"), 24)),
            to: None,
            action: RuleAction::Table(2),
            priority: 100,
            fwmark: Some((7, None)),
            iif: Some("eth0".into()),
            oif: None,
            tos: 0,
            invert: true,
            no_track: false,
            loc: loc(),
        };
        for r in [
            base.clone(),
            Rule {
                v6: true,
                from: Some(("2001:db8::".parse().expect("a"), 32)),
                fwmark: None,
                ..base.clone()
            },
            Rule {
                action: RuleAction::Table(5000),
                from: Some(("0.0.0.0".parse().expect("a"), 0)),
                ..base.clone()
            },
            Rule { action: RuleAction::Blackhole, ..base.clone() },
        ] {
            let key = rule_key(&r);
            assert_eq!(rule_key_of(&rule_message(&key, true)), Some(key));
        }
        assert_eq!(rule_key(&base).fwmark, (7, u32::MAX), "a mark without a mask matches all its bits");
        let key = rule_key(&base);
        assert_eq!(parse_rule_record(&rule_record(&key, true)), Some((key, true)), "crash record");
        assert_eq!(rule_key(&base).from, Some(("203.0.113.0".parse().expect("a"), 24)));
    }
}

//! The macvlans of `use_vmac` (keepalived's VMACs, RFC 5798 7.3): the
//! one owner of the links the agent creates.
//!
//! An instance with `use_vmac` puts its VIPs on a macvlan (mode private,
//! as keepalived: frames for the virtual MAC reach it and nothing else)
//! whose MAC address is the virtual router's, 00:00:5e:00:01:VRID
//! (00:00:5e:00:02:VRID for IPv6). Hosts on the segment then keep one
//! neighbour entry for a VIP across failovers: the new master answers
//! with the same MAC, and its gratuitous ARPs only move the switches'
//! forwarding entries.
//!
//! Reconciled like the addresses: the instances say which macvlans they
//! want (name, base interface, MAC), the kernel's link dump says what is
//! there, and `Vmacs::plan` returns what to create, take over (a macvlan
//! a killed agent left, or keepalived's of the same name and MAC),
//! replace (one of that name with the wrong MAC, mode or base) or delete
//! (at stop, only those we created or took over). The planning and
//! keepalived's naming rules (`resolve_names`) are pure and unit-tested;
//! `edge` talks rtnetlink and sysctl.

use std::collections::BTreeMap;

use vrrp_common::wire::Family;

/// A macvlan an instance wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Its name (resolved by `resolve_names`).
    pub name: String,
    /// The base interface's index; 0 while it does not exist (a macvlan
    /// goes with its base, and comes back with it).
    pub base: u32,
    /// Its MAC address.
    pub mac: [u8; 6],
}

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Interface index.
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// Whether it is a macvlan in private mode, and its lower link; None
    /// for any other kind of link.
    pub macvlan: Option<Macvlan>,
    /// Its MAC address.
    pub mac: Option<[u8; 6]>,
    /// IFF_UP.
    pub up: bool,
}

/// A macvlan's settings that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Macvlan {
    /// Mode private (keepalived's).
    pub private: bool,
    /// The lower link's index.
    pub link: u32,
}

/// What to do with a macvlan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmacOp {
    /// Create it (mode private, down; `edge::configure` brings it up).
    Create {
        /// Name.
        name: String,
        /// Base interface.
        base: u32,
        /// MAC address.
        mac: [u8; 6],
        /// We had it and it was deleted under us.
        repair: bool,
    },
    /// A macvlan of that name and settings is there and not yet ours (a
    /// killed agent's, or keepalived's): take it as ours.
    Adopt {
        /// Name.
        name: String,
        /// Its index.
        ifindex: u32,
    },
    /// A macvlan of that name with the wrong MAC, mode or base: delete it
    /// and create it as wanted (keepalived updates or re-creates it too).
    Replace {
        /// Name.
        name: String,
        /// The index of the one there.
        ifindex: u32,
        /// Base interface.
        base: u32,
        /// MAC address.
        mac: [u8; 6],
    },
    /// Ours, but set down by someone: up again.
    Up {
        /// Name.
        name: String,
        /// Index.
        ifindex: u32,
    },
    /// Delete it (ours, and no longer wanted, or the agent stops).
    Delete {
        /// Name.
        name: String,
        /// Index.
        ifindex: u32,
    },
    /// An interface of that name that is not a macvlan: never touched.
    Conflict {
        /// Name.
        name: String,
    },
}

/// The macvlans we created or took over, by name, with their index.
#[derive(Clone, Debug, Default)]
pub struct Vmacs {
    owned: BTreeMap<String, u32>,
}

impl Vmacs {
    /// None yet.
    pub fn new() -> Vmacs {
        Vmacs::default()
    }

    /// What brings `links` to `desired`.
    pub fn plan(&self, desired: &[Desired], links: &[Observed]) -> Vec<VmacOp> {
        let mut ops = Vec::new();
        for d in desired {
            // No base, no macvlan: the kernel deleted it with its base.
            if d.base == 0 {
                continue;
            }
            let name = d.name.clone();
            match links.iter().find(|l| l.name == d.name) {
                None => ops.push(VmacOp::Create {
                    name,
                    base: d.base,
                    mac: d.mac,
                    repair: self.owned.contains_key(&d.name),
                }),
                Some(l) => match l.macvlan {
                    None => ops.push(VmacOp::Conflict { name }),
                    Some(m) if m.private && m.link == d.base && l.mac == Some(d.mac) => {
                        if self.owned.get(&d.name) != Some(&l.ifindex) {
                            ops.push(VmacOp::Adopt { name, ifindex: l.ifindex });
                        } else if !l.up {
                            ops.push(VmacOp::Up { name, ifindex: l.ifindex });
                        }
                    }
                    Some(_) => {
                        ops.push(VmacOp::Replace { name, ifindex: l.ifindex, base: d.base, mac: d.mac })
                    }
                },
            }
        }
        for (name, ifindex) in &self.owned {
            if desired.iter().any(|d| &d.name == name) {
                continue;
            }
            if let Some(l) = links.iter().find(|l| &l.name == name && l.ifindex == *ifindex) {
                ops.push(VmacOp::Delete { name: name.clone(), ifindex: l.ifindex });
            }
        }
        ops
    }

    /// What removes every macvlan we own that is still there.
    pub fn plan_stop(&self, links: &[Observed]) -> Vec<VmacOp> {
        self.plan(&[], links)
    }

    /// `op` succeeded; `ifindex` is the macvlan's index now (for a
    /// create or replace, the new one's).
    pub fn applied(&mut self, op: &VmacOp, ifindex: u32) {
        match op {
            VmacOp::Create { name, .. } | VmacOp::Adopt { name, .. } | VmacOp::Replace { name, .. } => {
                self.owned.insert(name.clone(), ifindex);
            }
            VmacOp::Delete { name, .. } => {
                self.owned.remove(name);
            }
            VmacOp::Up { .. } | VmacOp::Conflict { .. } => {}
        }
    }

    /// Whether we own none.
    pub fn is_empty(&self) -> bool {
        self.owned.is_empty()
    }

    /// Whether `name` is one of ours.
    pub fn owns(&self, name: &str) -> bool {
        self.owned.contains_key(name)
    }
}

/// What an instance asks for, before its macvlan has a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The instance's name, for messages.
    pub instance: String,
    /// `use_vmac NAME`, if given.
    pub name: Option<String>,
    /// The base interface's index (0: it does not exist yet).
    pub base: u32,
    /// The MAC address.
    pub mac: [u8; 6],
    /// The instance's family.
    pub family: Family,
    /// Its VRID.
    pub vrid: u8,
}

/// keepalived's names for the macvlans (vrrp.c, at start): an existing
/// private macvlan on the same base with the instance's MAC keeps its
/// name (so a restart takes over what the last run left, whatever it was
/// called); else the configured name, unless another instance has it or
/// a link that is not a macvlan does; else `vrrp.VRID`, then `vrrp1.VRID`,
/// `vrrp2.VRID`, ... skipping names in use (for IPv6 `vrrp6.VRID` comes
/// second, so that an IPv4 and an IPv6 instance of the same VRID get
/// `vrrp.VRID` and `vrrp6.VRID`). Returns each name with the notes
/// keepalived would log.
pub fn resolve_names(specs: &[Spec], links: &[Observed]) -> Vec<(String, Vec<String>)> {
    let mut taken: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for s in specs {
        let mut notes = Vec::new();
        let found = links.iter().find(|l| {
            s.base != 0
                && l.macvlan.is_some_and(|m| m.private && m.link == s.base)
                && l.mac == Some(s.mac)
                && !taken.contains(&l.name)
        });
        let name = if let Some(l) = found {
            if let Some(n) = s.name.as_ref().filter(|n| **n != l.name) {
                notes.push(format!(
                    "({}) vmac name mismatch {n} <=> {}. changing to {}",
                    s.instance, l.name, l.name
                ));
            }
            l.name.clone()
        } else {
            let configured = s.name.as_ref().filter(|n| {
                if taken.contains(n) {
                    notes.push(format!("({}) another VRRP instance is already using {n} - ignoring name", s.instance));
                    return false;
                }
                if links.iter().any(|l| &l.name == *n && l.macvlan.is_none()) {
                    notes.push(format!(
                        "({}) VMAC interface name {n} already exists as a non VMAC interface. ignoring configured name",
                        s.instance
                    ));
                    return false;
                }
                true
            });
            match configured {
                Some(n) => n.clone(),
                None => generated(s, &taken, links),
            }
        };
        taken.push(name.clone());
        out.push((name, notes));
    }
    out
}

/// keepalived's `create_vmac_name` with prefix `vrrp`.
fn generated(s: &Spec, taken: &[String], links: &[Observed]) -> String {
    let free = |n: &String| !taken.contains(n) && !links.iter().any(|l| &l.name == n);
    let first = format!("vrrp.{}", s.vrid);
    if free(&first) {
        return first;
    }
    let mut num: u32 = 0;
    loop {
        num = match (s.family, num) {
            (Family::V6, 0) => 6,
            (Family::V6, 6) => 1,
            (Family::V6, 5) => 7,
            (_, n) => n + 1,
        };
        let n = format!("vrrp{num}.{}", s.vrid);
        if free(&n) || num > 10_000 {
            return n;
        }
    }
}

/// What `clear_rp_filter` changed, to put back at stop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpFilterSaved {
    /// `all.rp_filter` before (non-zero, or nothing was changed).
    pub all: u32,
    /// `default.rp_filter` before, if it was raised.
    pub default: Option<u32>,
    /// Interfaces raised, with their value before.
    pub ifaces: Vec<(String, u32)>,
}

/// keepalived's `clear_rp_filter` (vrrp_if_config.c), pure: an IPv4
/// macvlan needs rp_filter 0 (traffic for the VIP arrives on it from
/// hosts whose route goes by the base), and the kernel uses the larger of
/// `all` and the interface's value. So when `all` is set, `default` and
/// every interface are raised to at least `all`'s value (nothing changes
/// for them), then `all` is set to 0. Returns the writes (`"all"`,
/// `"default"` or an interface, value) and what to put back; None when
/// `all` is 0.
pub fn clear_rp_filter(
    all: u32,
    default: u32,
    ifaces: &[(String, u32)],
) -> Option<(Vec<(String, u32)>, RpFilterSaved)> {
    if all == 0 {
        return None;
    }
    let mut writes = Vec::new();
    let mut saved = RpFilterSaved { all, ..RpFilterSaved::default() };
    if default < all {
        writes.push(("default".to_owned(), all));
        saved.default = Some(default);
    }
    for (name, v) in ifaces.iter().filter(|(n, v)| *v < all && n != "all" && n != "default") {
        writes.push((name.clone(), all));
        saved.ifaces.push((name.clone(), *v));
    }
    writes.push(("all".to_owned(), 0));
    Some((writes, saved))
}

/// keepalived's `restore_rp_filter`: put back what `clear_rp_filter`
/// changed, only where the value is still what we set (someone may have
/// changed it since). `now` reads a current value.
pub fn restore_rp_filter(saved: &RpFilterSaved, now: impl Fn(&str) -> Option<u32>) -> Vec<(String, u32)> {
    let mut writes = Vec::new();
    if now("all") == Some(0) {
        writes.push(("all".to_owned(), saved.all));
    }
    if let Some(d) = saved.default
        && now("default") == Some(saved.all)
    {
        writes.push(("default".to_owned(), d));
    }
    for (name, v) in &saved.ifaces {
        if now(name) == Some(saved.all) {
            writes.push((name.clone(), *v));
        }
    }
    writes
}

/// The sysctls a run changed, with their values before, as recorded in
/// `/run/vrrp-agent/<name>.vmac` for the next run: an agent killed before
/// it put them back leaves them changed, and the next run must put back
/// the values from before the first, not what it finds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Originals {
    /// Per base interface, `BASE_ARP`'s keys before (None: unreadable).
    pub arp: BTreeMap<String, Vec<Option<u32>>>,
    /// What `clear_rp_filter` changed.
    pub rp_filter: Option<RpFilterSaved>,
}

impl Originals {
    /// One line per setting.
    pub fn to_text(&self) -> String {
        let v = |x: &Option<u32>| x.map_or("-".to_owned(), |n| n.to_string());
        let mut out = String::new();
        for (base, vals) in &self.arp {
            out += &format!("arp {base} {}\n", vals.iter().map(v).collect::<Vec<_>>().join(" "));
        }
        if let Some(rp) = &self.rp_filter {
            out += &format!("rp_all {}\n", rp.all);
            if let Some(d) = rp.default {
                out += &format!("rp_default {d}\n");
            }
            for (i, x) in &rp.ifaces {
                out += &format!("rp_if {i} {x}\n");
            }
        }
        out
    }

    /// Read `to_text`'s lines; malformed ones are skipped.
    pub fn parse(text: &str) -> Originals {
        let mut o = Originals::default();
        let num = |w: Option<&str>| w.and_then(|x| x.parse::<u32>().ok());
        for line in text.lines() {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("arp") => {
                    if let Some(base) = w.next() {
                        o.arp.insert(base.to_owned(), w.map(|x| x.parse().ok()).collect());
                    }
                }
                Some("rp_all") => {
                    if let Some(a) = num(w.next()) {
                        o.rp_filter.get_or_insert_with(RpFilterSaved::default).all = a;
                    }
                }
                Some("rp_default") => {
                    if let Some(d) = num(w.next()) {
                        o.rp_filter.get_or_insert_with(RpFilterSaved::default).default = Some(d);
                    }
                }
                Some("rp_if") => {
                    if let (Some(i), Some(x)) = (w.next(), num(w.next())) {
                        o.rp_filter.get_or_insert_with(RpFilterSaved::default).ifaces.push((i.to_owned(), x));
                    }
                }
                _ => {}
            }
        }
        o
    }
}

/// The netlink and sysctl side.
pub mod edge {
    use std::io;
    use std::net::{IpAddr, Ipv6Addr};

    use futures_util::TryStreamExt;
    use rtnetlink::Handle;
    use rtnetlink::packet_route::link::{
        InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
    };
    use rtnetlink::{LinkMacVlan, LinkUnspec};
    use vrrp_common::wire::Family;

    use super::{Macvlan, Observed};

    /// Every link, as `Vmacs::plan` reads them.
    pub async fn observe(handle: &Handle) -> Result<Vec<Observed>, rtnetlink::Error> {
        let mut out = Vec::new();
        let mut s = handle.link().get().execute();
        while let Some(l) = s.try_next().await? {
            out.push(observed(&l));
        }
        Ok(out)
    }

    fn observed(l: &LinkMessage) -> Observed {
        let mut o = Observed {
            ifindex: l.header.index,
            name: String::new(),
            macvlan: None,
            mac: None,
            up: l.header.flags.contains(LinkFlags::Up),
        };
        let mut link = 0;
        let mut kind_macvlan = false;
        let mut private = false;
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => o.name = n.clone(),
                LinkAttribute::Address(m) if m.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(m);
                    o.mac = Some(mac);
                }
                LinkAttribute::Link(i) => link = *i,
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(InfoKind::MacVlan) => kind_macvlan = true,
                            LinkInfo::Data(InfoData::MacVlan(d)) => {
                                private =
                                    d.iter().any(|x| matches!(x, InfoMacVlan::Mode(MacVlanMode::Private)))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if kind_macvlan {
            o.macvlan = Some(Macvlan { private, link });
        }
        o
    }

    /// Create macvlan `name` on `base` with `mac`, mode private, down
    /// (`configure` sets it up once IPv6 address generation is off).
    /// Returns its index.
    pub async fn create(
        handle: &Handle,
        name: &str,
        base: u32,
        mac: [u8; 6],
    ) -> Result<u32, rtnetlink::Error> {
        let msg = LinkMacVlan::new(name, base, MacVlanMode::Private).address(mac.to_vec()).build();
        handle.link().add(msg).execute().await?;
        let mut s = handle.link().get().match_name(name.to_owned()).execute();
        match s.try_next().await? {
            Some(l) => Ok(l.header.index),
            None => Err(rtnetlink::Error::RequestFailed),
        }
    }

    /// Delete link `ifindex`.
    pub async fn delete(handle: &Handle, ifindex: u32) -> Result<(), rtnetlink::Error> {
        match handle.link().del(ifindex).execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
            r => r,
        }
    }

    /// Set link `ifindex` up.
    pub async fn up(handle: &Handle, ifindex: u32) -> Result<(), rtnetlink::Error> {
        handle.link().set(LinkUnspec::new_with_index(ifindex).up().build()).execute().await
    }

    fn sysctl_path(v: &str, iface: &str, key: &str) -> String {
        format!("/proc/sys/net/{v}/conf/{iface}/{key}")
    }

    /// Read a per-interface sysctl (`v` is "ipv4" or "ipv6").
    pub fn get(v: &str, iface: &str, key: &str) -> io::Result<u32> {
        let text = std::fs::read_to_string(sysctl_path(v, iface, key))?;
        text.trim().parse().map_err(|_| io::Error::other(format!("{v}.conf.{iface}.{key}: {text:?}")))
    }

    /// Write a per-interface sysctl.
    pub fn set(v: &str, iface: &str, key: &str, value: u32) -> io::Result<()> {
        std::fs::write(sysctl_path(v, iface, key), format!("{value}\n"))
            .map_err(|e| io::Error::new(e.kind(), format!("{v}.conf.{iface}.{key}={value}: {e}")))
    }

    /// Make macvlan `name` (index `ifindex`) what keepalived makes a VMAC
    /// (vrrp_vmac.c, vrrp_if_config.c), then set it up:
    /// - IPv4: arp_ignore=1 (never answer ARP for the base's addresses
    ///   with the virtual MAC), accept_local=1 (hear the other node's
    ///   adverts, whose source MAC is the same as ours), rp_filter=0
    ///   (receive there without an address in the sender's subnet),
    ///   promote_secondaries=1; no IPv6 on it (keepalived disables it
    ///   for an IPv4 instance: no DAD or MLD from the virtual MAC);
    /// - no IPv6 address generated from the MAC (RFC 5798 7.4: the
    ///   virtual MAC's link-local address would be the same on every
    ///   node); for IPv6 without `vmac_xmit_base`, the base's link-local
    ///   address, so adverts go out on the macvlan from it.
    pub async fn configure(
        handle: &Handle,
        name: &str,
        ifindex: u32,
        family: Family,
        link_local: Option<Ipv6Addr>,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let mut try_set = |v: &str, key: &str, value: u32| {
            if let Err(e) = set(v, name, key, value) {
                errors.push(e.to_string());
            }
        };
        // Before the link goes up: an address generated at up would stay.
        try_set("ipv6", "addr_gen_mode", 1);
        if family == Family::V4 {
            try_set("ipv4", "arp_ignore", 1);
            try_set("ipv4", "accept_local", 1);
            try_set("ipv4", "rp_filter", 0);
            try_set("ipv4", "promote_secondaries", 1);
            try_set("ipv6", "disable_ipv6", 1);
        } else {
            try_set("ipv6", "disable_ipv6", 0);
        }
        if let Err(e) = up(handle, ifindex).await {
            errors.push(format!("setting {name} up: {e}"));
        }
        if let Some(ll) = link_local {
            let mut req = handle.address().add(ifindex, IpAddr::V6(ll), 64);
            // No duplicate address detection: the address is the base's
            // own, and DAD would send from the virtual MAC.
            use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            match req.execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {}
                Err(e) => errors.push(format!("adding {ll} to {name}: {e}")),
            }
        }
        errors
    }
}

/// The agent's macvlans: what the instances want, what we own, and the
/// base interfaces' ARP settings to put back at stop.
#[derive(Debug, Default)]
pub struct Manager {
    plan: Vmacs,
    wants: Vec<Want>,
    /// Per base interface, its ARP settings as they were before we set
    /// them (`BASE_ARP`; keepalived restores them at exit).
    saved: BTreeMap<String, Vec<Option<u32>>>,
    /// Where `saved` and `rp_filter` are recorded for the next run.
    record: Option<std::path::PathBuf>,
    /// Conflicts already logged, so a link event does not log them again.
    conflicts: Vec<String>,
    /// What `clear_rp_filter` changed.
    rp_filter: Option<RpFilterSaved>,
}

fn value_of(ifaces: &[(String, u32)], name: &str) -> u32 {
    ifaces.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
}

/// The base interface's ARP settings while an IPv4 VMAC is on it
/// (`Manager::base_arp`).
const BASE_ARP: [(&str, u32); 3] = [("arp_ignore", 1), ("arp_filter", 1), ("arp_announce", 2)];

/// One instance's macvlan, named.
#[derive(Clone, Debug)]
struct Want {
    instance: String,
    name: String,
    base: String,
    mac: [u8; 6],
    family: Family,
    xmit_base: bool,
    /// `unicast_src_ip` if IPv6: the macvlan's link-local address then.
    src6: Option<std::net::Ipv6Addr>,
}

impl Manager {
    /// Name the macvlans of `cfg`'s instances with `use_vmac` (keepalived's
    /// rules, from the links there now) and bring them up. Returns each
    /// instance's macvlan name (None without use_vmac).
    pub async fn start(
        cfg: &crate::config::Config,
        handle: &rtnetlink::Handle,
        agent: &str,
    ) -> (Manager, Vec<Option<String>>) {
        let mut m = Manager::default();
        // A run killed before it put the sysctls back recorded the values
        // from before it: those are the ones to put back.
        let path = std::path::PathBuf::from(crate::instance_lock::LOCK_DIR).join(format!("{agent}.vmac"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let o = Originals::parse(&text);
            log::warn!(
                "{}: an earlier run did not stop cleanly; the sysctls it changed are put back to its record at stop",
                path.display()
            );
            m.saved = o.arp;
            m.rp_filter = o.rp_filter;
        }
        m.record = Some(path);
        let with: Vec<&crate::config::Instance> = cfg.instances.iter().filter(|i| i.vmac.is_some()).collect();
        if with.is_empty() {
            // No VMAC any more: put back what the earlier run changed now.
            m.restore_sysctls();
            return (m, vec![None; cfg.instances.len()]);
        }
        let out = m.name_and_make(cfg, handle).await;
        (m, out)
    }

    /// Name the macvlans of `cfg`'s `use_vmac` instances (keepalived's
    /// rules, from the links there now; ours keep their names) and bring
    /// them to the kernel. Each instance's macvlan name (None without).
    async fn name_and_make(
        &mut self,
        cfg: &crate::config::Config,
        handle: &rtnetlink::Handle,
    ) -> Vec<Option<String>> {
        let m = self;
        let with: Vec<&crate::config::Instance> = cfg.instances.iter().filter(|i| i.vmac.is_some()).collect();
        let links = match edge::observe(handle).await {
            Ok(l) => l,
            Err(e) => {
                log::error!("reading the links for use_vmac: {e}");
                Vec::new()
            }
        };
        m.wants.clear();
        let specs: Vec<Spec> = with
            .iter()
            .map(|i| {
                let vm = i.vmac.clone().unwrap_or_default();
                Spec {
                    instance: i.name.clone(),
                    name: vm.name.clone(),
                    base: links.iter().find(|l| l.name == i.interface).map_or(0, |l| l.ifindex),
                    mac: vm.mac_for(i.vrid, i.family),
                    family: i.family,
                    vrid: i.vrid,
                }
            })
            .collect();
        let names = resolve_names(&specs, &links);
        for ((inst, spec), (name, notes)) in with.iter().zip(&specs).zip(&names) {
            for n in notes {
                log::warn!("{n}");
            }
            m.wants.push(Want {
                instance: inst.name.clone(),
                name: name.clone(),
                base: inst.interface.clone(),
                mac: spec.mac,
                family: inst.family,
                xmit_base: inst.vmac_xmit_base,
                src6: match inst.unicast_src_ip {
                    Some(std::net::IpAddr::V6(a)) => Some(a),
                    _ => None,
                },
            });
        }
        if m.wants.iter().any(|w| w.family == Family::V4) {
            m.clear_rp_filter();
        }
        m.reconcile(handle).await;
        let mut out = Vec::new();
        let mut it = names.into_iter();
        for i in &cfg.instances {
            out.push(if i.vmac.is_some() { it.next().map(|(n, _)| n) } else { None });
        }
        out
    }

    /// A reload: the macvlans of instances that are gone, or no longer use
    /// one, are deleted (their instances were stopped first), those of
    /// new `use_vmac` instances made; the others stay as they are. Each
    /// instance of `cfg`'s macvlan name (None without).
    pub async fn reload(
        &mut self,
        cfg: &crate::config::Config,
        handle: &rtnetlink::Handle,
    ) -> Vec<Option<String>> {
        // First what goes, so that a name or MAC it held is free.
        let keep = |w: &Want| {
            cfg.instances.iter().any(|i| {
                i.name == w.instance
                    && i.vmac.as_ref().is_some_and(|v| v.mac_for(i.vrid, i.family) == w.mac)
                    && i.interface == w.base
                    && i.family == w.family
                    && i.vmac_xmit_base == w.xmit_base
            })
        };
        let before = self.wants.len();
        self.wants.retain(keep);
        if self.wants.len() != before {
            self.reconcile(handle).await;
        }
        let out = if cfg.instances.iter().any(|i| i.vmac.is_some()) {
            self.name_and_make(cfg, handle).await
        } else {
            vec![None; cfg.instances.len()]
        };
        if self.wants.is_empty() {
            self.restore_sysctls();
        }
        out
    }

    /// Whether a change to link `name` concerns us (one of our macvlans
    /// or a base interface of one).
    pub fn concerns(&self, name: &str) -> bool {
        self.wants.iter().any(|w| w.name == name || w.base == name)
    }

    /// Bring the macvlans to what the instances want: create what is
    /// missing (at start, after a deletion, when a base comes back), take
    /// over a leftover, replace a wrong one, set ours up again.
    pub async fn reconcile(&mut self, handle: &rtnetlink::Handle) {
        // Nothing wanted and nothing owned (a reload may leave macvlans of
        // ours to delete).
        if self.wants.is_empty() && self.plan.is_empty() {
            return;
        }
        let links = match edge::observe(handle).await {
            Ok(l) => l,
            Err(e) => {
                log::error!("reading the links for use_vmac: {e}");
                return;
            }
        };
        let desired: Vec<Desired> = self
            .wants
            .iter()
            .map(|w| Desired {
                name: w.name.clone(),
                base: links.iter().find(|l| l.name == w.base).map_or(0, |l| l.ifindex),
                mac: w.mac,
            })
            .collect();
        for op in self.plan.plan(&desired, &links) {
            self.apply(handle, &op).await;
        }
    }

    async fn apply(&mut self, handle: &rtnetlink::Handle, op: &VmacOp) {
        let want = |name: &str| self.wants.iter().find(|w| w.name == name).cloned();
        let mac_s = |m: &[u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        let ifindex = match op {
            VmacOp::Conflict { name } => {
                if !self.conflicts.contains(name) {
                    log::error!(
                        "VMAC {name} conflicts with an existing interface that is not a macvlan: left alone; its instance stays in FAULT"
                    );
                    self.conflicts.push(name.clone());
                }
                return;
            }
            VmacOp::Create { name, base, mac, repair } => {
                let w = want(name);
                let who = w.as_ref().map_or("-", |w| w.instance.as_str());
                if *repair {
                    log::warn!("({who}) VMAC interface {name} was deleted: creating it again");
                }
                match edge::create(handle, name, *base, *mac).await {
                    Ok(i) => {
                        log::info!("({who}) created VMAC interface {name} ({}, ifindex {i})", mac_s(mac));
                        i
                    }
                    Err(e) => {
                        log::error!("({who}) Unable to create VMAC interface {name}: {e}");
                        return;
                    }
                }
            }
            VmacOp::Adopt { name, ifindex } => {
                let who = want(name).map_or_else(|| "-".to_owned(), |w| w.instance);
                log::info!(
                    "({who}) taking over VMAC interface {name} (ifindex {ifindex}), left by an earlier run"
                );
                *ifindex
            }
            VmacOp::Replace { name, ifindex, base, mac } => {
                let who = want(name).map_or_else(|| "-".to_owned(), |w| w.instance);
                log::info!("({who}) Removing old VMAC interface {name} due to wrong MAC, mode or interface");
                if let Err(e) = edge::delete(handle, *ifindex).await {
                    log::error!("({who}) removing {name}: {e}");
                    return;
                }
                match edge::create(handle, name, *base, *mac).await {
                    Ok(i) => i,
                    Err(e) => {
                        log::error!("({who}) Unable to create VMAC interface {name}: {e}");
                        return;
                    }
                }
            }
            VmacOp::Up { name, ifindex } => {
                log::warn!("VMAC interface {name} was set down: setting it up");
                if let Err(e) = edge::up(handle, *ifindex).await {
                    log::error!("setting {name} up: {e}");
                }
                return;
            }
            VmacOp::Delete { name, ifindex } => {
                match edge::delete(handle, *ifindex).await {
                    Ok(()) => log::info!("removed VMAC interface {name}"),
                    Err(e) => log::error!("removing VMAC interface {name}: {e}"),
                }
                self.plan.applied(op, *ifindex);
                return;
            }
        };
        self.plan.applied(op, ifindex);
        let Some(w) = want(match op {
            VmacOp::Create { name, .. } | VmacOp::Adopt { name, .. } | VmacOp::Replace { name, .. } => name,
            _ => return,
        }) else {
            return;
        };
        let ll = (w.family == Family::V6 && !w.xmit_base).then(|| self.link_local(&w)).flatten();
        for e in edge::configure(handle, &w.name, ifindex, w.family, ll).await {
            log::warn!("({}) configuring {}: {e}", w.instance, w.name);
        }
        if w.family == Family::V4 {
            self.base_arp(&w.base);
        }
    }

    /// The macvlan's IPv6 source (keepalived's `set_link_local_address`):
    /// unicast_src_ip, else the base's link-local address, else the one
    /// the base's MAC would give (EUI-64).
    fn link_local(&self, w: &Want) -> Option<std::net::Ipv6Addr> {
        if let Some(a) = w.src6 {
            return Some(a);
        }
        let own = super::link::addresses(&w.base, Family::V6);
        if let Some(std::net::IpAddr::V6(a)) = own.iter().find(|a| vrrp_common::rx::is_link_local_v6(a)) {
            return Some(*a);
        }
        let m = super::announce::mac_of(&w.base).ok()?;
        Some(std::net::Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 2,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ]))
    }

    /// The base of an IPv4 VMAC must never tell a host the VIP is at its
    /// own MAC address (the host would keep sending there after a
    /// failover, to the old master):
    /// - keepalived (vrrp_if_config.c): arp_ignore=1 and arp_filter=1,
    ///   so the base does not answer ARP for the VIP, which lives on the
    ///   macvlan;
    /// - and arp_announce=2 (beyond keepalived): a reply from the VIP
    ///   leaves by the base's route to the subnet, and the ARP request the
    ///   base sends for the host would carry the VIP as its sender
    ///   address, which the host takes into its entry for the VIP
    ///   (RFC 826's merge; measured: the entry moved from the virtual
    ///   MAC to the base's at the host's first reply). With 2, the
    ///   request carries the base's own address.
    fn base_arp(&mut self, base: &str) {
        if !self.saved.contains_key(base) {
            let old = BASE_ARP.iter().map(|(k, _)| edge::get("ipv4", base, k).ok()).collect();
            self.saved.insert(base.to_owned(), old);
            self.write_record();
        }
        for (key, v) in BASE_ARP {
            if let Err(e) = edge::set("ipv4", base, key, v) {
                log::warn!("setting {key} on {base}: {e}");
            }
        }
    }

    /// `clear_rp_filter` on this namespace's sysctls, logged as keepalived.
    fn clear_rp_filter(&mut self) {
        // Recorded by a run that was killed: `all` is ours already.
        if self.rp_filter.is_some() {
            return;
        }
        let Ok(all) = edge::get("ipv4", "all", "rp_filter") else {
            log::warn!("Unable to read sysctl net.ipv4.conf.all.rp_filter");
            return;
        };
        let default = edge::get("ipv4", "default", "rp_filter").unwrap_or(all);
        let ifaces: Vec<(String, u32)> = std::fs::read_dir("/proc/sys/net/ipv4/conf")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter_map(|n| edge::get("ipv4", &n, "rp_filter").ok().map(|v| (n, v)))
                    .collect()
            })
            .unwrap_or_default();
        let Some((writes, saved)) = clear_rp_filter(all, default, &ifaces) else { return };
        for (name, v) in writes {
            let old = if name == "all" {
                all
            } else if name == "default" {
                default
            } else {
                value_of(&ifaces, &name)
            };
            log::info!("NOTICE: setting sysctl net.ipv4.conf.{name}.rp_filter from {old} to {v}");
            if let Err(e) = edge::set("ipv4", &name, "rp_filter", v) {
                log::warn!("{e}");
            }
        }
        self.rp_filter = Some(saved);
        self.write_record();
    }

    /// Record what we changed, before it matters (a kill may come next).
    fn write_record(&self) {
        let Some(path) = &self.record else { return };
        let text = Originals { arp: self.saved.clone(), rp_filter: self.rp_filter.clone() }.to_text();
        let tmp = path.with_extension("vmac.tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
            log::warn!("recording the sysctls changed in {}: {e}", path.display());
        }
    }

    /// Put back the sysctls we changed (keepalived's restore_rp_filter and
    /// reset_interface_parameters) and drop the record.
    fn restore_sysctls(&mut self) {
        if let Some(saved) = self.rp_filter.take() {
            for (name, v) in restore_rp_filter(&saved, |n| edge::get("ipv4", n, "rp_filter").ok()) {
                log::info!("NOTICE: resetting sysctl net.ipv4.conf.{name}.rp_filter to {v}");
                if let Err(e) = edge::set("ipv4", &name, "rp_filter", v) {
                    log::warn!("{e}");
                }
            }
        }
        for (base, old) in std::mem::take(&mut self.saved) {
            for ((key, _), v) in BASE_ARP.iter().zip(old) {
                // A base that is gone has nothing to put back.
                if let Some(v) = v
                    && let Err(e) = edge::set("ipv4", &base, key, v)
                {
                    log::warn!("restoring {key} on {base}: {e}");
                }
            }
        }
        if let Some(path) = &self.record {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The agent stops: delete the macvlans we own (their addresses go
    /// with them) and put back the bases' ARP settings.
    pub async fn stop(&mut self, handle: &rtnetlink::Handle) {
        if self.wants.is_empty() {
            self.restore_sysctls();
            return;
        }
        let links = edge::observe(handle).await.unwrap_or_default();
        for op in self.plan.plan_stop(&links) {
            self.apply(handle, &op).await;
        }
        self.restore_sysctls();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC5: [u8; 6] = [0, 0, 0x5e, 0, 1, 5];

    fn want(name: &str) -> Desired {
        Desired { name: name.into(), base: 2, mac: MAC5 }
    }

    fn macvlan(ifindex: u32, name: &str, link: u32, mac: [u8; 6], private: bool) -> Observed {
        Observed {
            ifindex,
            name: name.into(),
            macvlan: Some(Macvlan { private, link }),
            mac: Some(mac),
            up: true,
        }
    }

    fn plain(ifindex: u32, name: &str) -> Observed {
        Observed { ifindex, name: name.into(), macvlan: None, mac: Some([2, 0, 0, 0, 0, 1]), up: true }
    }

    fn spec(name: Option<&str>, family: Family, vrid: u8) -> Spec {
        let mac = crate::config::model::virtual_mac(vrid, family);
        Spec { instance: "VI".into(), name: name.map(Into::into), base: 2, mac, family, vrid }
    }

    #[test]
    fn a_missing_macvlan_is_created_then_nothing_to_do() {
        let mut v = Vmacs::new();
        let links = [plain(2, "eth0")];
        let ops = v.plan(&[want("vrrp.5")], &links);
        assert_eq!(ops, vec![VmacOp::Create { name: "vrrp.5".into(), base: 2, mac: MAC5, repair: false }]);
        v.applied(&ops[0], 7);
        let links = [plain(2, "eth0"), macvlan(7, "vrrp.5", 2, MAC5, true)];
        assert!(v.plan(&[want("vrrp.5")], &links).is_empty());
        assert!(v.owns("vrrp.5"));
    }

    #[test]
    fn a_leftover_is_adopted_not_recreated() {
        let v = Vmacs::new();
        let links = [plain(2, "eth0"), macvlan(9, "vrrp.5", 2, MAC5, true)];
        assert_eq!(
            v.plan(&[want("vrrp.5")], &links),
            vec![VmacOp::Adopt { name: "vrrp.5".into(), ifindex: 9 }]
        );
    }

    #[test]
    fn a_wrong_mac_mode_or_base_is_replaced() {
        let v = Vmacs::new();
        for l in [
            macvlan(9, "vrrp.5", 2, [0, 0, 0x5e, 0, 1, 6], true),
            macvlan(9, "vrrp.5", 2, MAC5, false),
            macvlan(9, "vrrp.5", 3, MAC5, true),
        ] {
            assert_eq!(
                v.plan(&[want("vrrp.5")], &[l]),
                vec![VmacOp::Replace { name: "vrrp.5".into(), ifindex: 9, base: 2, mac: MAC5 }]
            );
        }
    }

    #[test]
    fn a_link_that_is_not_a_macvlan_is_never_touched() {
        let v = Vmacs::new();
        assert_eq!(
            v.plan(&[want("vrrp.5")], &[plain(9, "vrrp.5")]),
            vec![VmacOp::Conflict { name: "vrrp.5".into() }]
        );
    }

    #[test]
    fn ours_deleted_is_created_again_and_set_down_is_set_up() {
        let mut v = Vmacs::new();
        v.applied(&VmacOp::Adopt { name: "vrrp.5".into(), ifindex: 9 }, 9);
        assert_eq!(
            v.plan(&[want("vrrp.5")], &[plain(2, "eth0")]),
            vec![VmacOp::Create { name: "vrrp.5".into(), base: 2, mac: MAC5, repair: true }]
        );
        let mut down = macvlan(9, "vrrp.5", 2, MAC5, true);
        down.up = false;
        assert_eq!(
            v.plan(&[want("vrrp.5")], &[down]),
            vec![VmacOp::Up { name: "vrrp.5".into(), ifindex: 9 }]
        );
    }

    #[test]
    fn no_base_no_macvlan() {
        let v = Vmacs::new();
        assert!(v.plan(&[Desired { base: 0, ..want("vrrp.5") }], &[]).is_empty());
    }

    #[test]
    fn stop_deletes_only_ours() {
        let mut v = Vmacs::new();
        v.applied(&VmacOp::Create { name: "vrrp.5".into(), base: 2, mac: MAC5, repair: false }, 7);
        let links = [macvlan(7, "vrrp.5", 2, MAC5, true), macvlan(8, "other", 2, [2, 0, 0, 0, 0, 9], true)];
        let ops = v.plan_stop(&links);
        assert_eq!(ops, vec![VmacOp::Delete { name: "vrrp.5".into(), ifindex: 7 }]);
        v.applied(&ops[0], 7);
        assert!(v.plan_stop(&links).is_empty());
    }

    #[test]
    fn rp_filter_moves_off_all_and_comes_back() {
        assert_eq!(clear_rp_filter(0, 1, &[("eth0".into(), 0)]), None, "nothing to do when all is 0");
        let ifaces = [("eth0".into(), 0), ("lo".into(), 2), ("all".into(), 1), ("default".into(), 0)];
        let (writes, saved) = clear_rp_filter(1, 0, &ifaces).expect("changes");
        assert_eq!(
            writes,
            vec![("default".to_owned(), 1), ("eth0".to_owned(), 1), ("all".to_owned(), 0)],
            "default and interfaces below all raised first, then all cleared"
        );
        assert_eq!(saved, RpFilterSaved { all: 1, default: Some(0), ifaces: vec![("eth0".into(), 0)] });
        // Put back only what is still ours: eth0 was changed meanwhile.
        let now = |n: &str| match n {
            "all" => Some(0),
            "default" => Some(1),
            "eth0" => Some(2),
            _ => None,
        };
        assert_eq!(restore_rp_filter(&saved, now), vec![("all".to_owned(), 1), ("default".to_owned(), 0)]);
    }

    #[test]
    fn the_record_reads_back_what_it_wrote() {
        let mut o = Originals::default();
        o.arp.insert("eth0".into(), vec![Some(0), None, Some(2)]);
        o.rp_filter = Some(RpFilterSaved {
            all: 1,
            default: Some(0),
            ifaces: vec![("eth0".into(), 0), ("lo".into(), 0)],
        });
        assert_eq!(Originals::parse(&o.to_text()), o);
        assert_eq!(Originals::parse("garbage\narp\nrp_all x\n"), Originals::default());
    }

    #[test]
    fn names_as_keepalived() {
        let links = [plain(2, "eth0")];
        let got = resolve_names(&[spec(None, Family::V4, 5), spec(None, Family::V6, 5)], &links);
        assert_eq!((got[0].0.as_str(), got[1].0.as_str()), ("vrrp.5", "vrrp6.5"));
        assert_eq!(resolve_names(&[spec(None, Family::V6, 5)], &links)[0].0, "vrrp.5", "IPv6 alone");
        let got = resolve_names(&[spec(None, Family::V4, 5), spec(None, Family::V4, 5)], &links);
        assert_eq!(got[1].0, "vrrp1.5");
        // A link of that name that is not ours to take: the next name.
        let got = resolve_names(&[spec(None, Family::V6, 5)], &[plain(9, "vrrp.5"), plain(10, "vrrp6.5")]);
        assert_eq!(got[0].0, "vrrp1.5");
        let got = resolve_names(&[spec(Some("vip5"), Family::V4, 5)], &links);
        assert_eq!(got[0], ("vip5".to_owned(), vec![]));
    }

    #[test]
    fn an_existing_matching_macvlan_keeps_its_name() {
        let links = [plain(2, "eth0"), macvlan(9, "old5", 2, MAC5, true)];
        let got = resolve_names(&[spec(Some("vip5"), Family::V4, 5)], &links);
        assert_eq!(got[0].0, "old5");
        assert!(got[0].1[0].contains("vmac name mismatch vip5 <=> old5"), "{:?}", got[0].1);
        assert_eq!(resolve_names(&[spec(None, Family::V4, 5)], &links)[0].0, "old5");
    }

    #[test]
    fn a_configured_name_of_another_kind_of_link_is_ignored() {
        let got = resolve_names(&[spec(Some("eth0"), Family::V4, 5)], &[plain(2, "eth0")]);
        assert_eq!(got[0].0, "vrrp.5");
        assert!(got[0].1[0].contains("already exists as a non VMAC interface"), "{:?}", got[0].1);
        let got = resolve_names(&[spec(Some("v"), Family::V4, 5), spec(Some("v"), Family::V4, 6)], &[]);
        assert_eq!((got[0].0.as_str(), got[1].0.as_str()), ("v", "vrrp.6"));
    }
}

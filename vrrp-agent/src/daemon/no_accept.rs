//! Accept Mode's kernel state, reconciled: which rows of the XDP
//! program's `VRRP_NOACCEPT` map (vrrp-common `accept`) the instances want
//! and which the agent has written. Pure; the agent applies the ops.
//!
//! keepalived adds its firewall drop rules when an instance that is not
//! the address owner and not in accept mode becomes MASTER, before it adds
//! the VIPs, and removes them after it removes the VIPs on leaving MASTER
//! (vrrp.c, `vrrp_state_become_master` / `vrrp_restore_interface`); the
//! rows follow the same order: adds before the address changes, removals
//! after, so no VIP is ever present without its drop rule.

use std::collections::BTreeMap;
use std::net::IpAddr;

use vrrp_common::accept::{VipKey, VipOwner, vip_key};
use vrrp_common::maps::{FAMILY_IPV4, FAMILY_IPV6};

/// One change to the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOp {
    /// Drop packets to this address.
    Add(VipKey, VipOwner),
    /// Accept them again.
    Remove(VipKey),
}

/// The map rows the agent has written.
#[derive(Debug, Default)]
pub struct NoAcceptRows {
    installed: BTreeMap<VipKey, VipOwner>,
}

/// The row of VIP `addr` of the instance `vrid` on `ifindex` (the VIP's
/// own interface for a link-local one).
pub fn row(ifindex: u32, vrid: u8, addr: IpAddr) -> (VipKey, VipOwner) {
    let key = match addr {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            vip_key(ifindex, FAMILY_IPV4, &b)
        }
        IpAddr::V6(a) => vip_key(ifindex, FAMILY_IPV6, &a.octets()),
    };
    (key, VipOwner { ifindex, vrid, _pad: [0; 3] })
}

impl NoAcceptRows {
    /// What to change so the map holds exactly `wanted`: additions (and
    /// owner changes) first, then removals, each sorted.
    pub fn plan(&self, wanted: &BTreeMap<VipKey, VipOwner>) -> (Vec<RowOp>, Vec<RowOp>) {
        let adds = wanted
            .iter()
            .filter(|(k, o)| self.installed.get(k) != Some(o))
            .map(|(k, o)| RowOp::Add(*k, *o))
            .collect();
        let removes =
            self.installed.keys().filter(|k| !wanted.contains_key(k)).map(|k| RowOp::Remove(*k)).collect();
        (adds, removes)
    }

    /// Record the outcome of `op`: a failed one stays planned.
    pub fn applied(&mut self, op: &RowOp, ok: bool) {
        if !ok {
            return;
        }
        match op {
            RowOp::Add(k, o) => {
                self.installed.insert(*k, *o);
            }
            RowOp::Remove(k) => {
                self.installed.remove(k);
            }
        }
    }

    /// How many rows are written.
    pub fn len(&self) -> usize {
        self.installed.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.installed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(rows: &[(u32, u8, &str)]) -> BTreeMap<VipKey, VipOwner> {
        rows.iter().map(|(i, v, a)| row(*i, *v, a.parse().expect("address"))).collect()
    }

    fn apply(r: &mut NoAcceptRows, ops: &[RowOp]) {
        for op in ops {
            r.applied(op, true);
        }
    }

    #[test]
    fn a_master_gets_its_rows_and_loses_them_on_leaving() {
        let mut r = NoAcceptRows::default();
        let w = wanted(&[(2, 51, "192.0.2.16"), (2, 51, "192.0.2.17")]);
        let (adds, removes) = r.plan(&w);
        assert_eq!(adds.len(), 2);
        assert!(removes.is_empty());
        apply(&mut r, &adds);
        assert_eq!(r.plan(&w), (vec![], vec![]), "nothing to do once written");
        let (adds, removes) = r.plan(&BTreeMap::new());
        assert!(adds.is_empty());
        assert_eq!(removes.len(), 2);
        apply(&mut r, &removes);
        assert!(r.is_empty());
    }

    #[test]
    fn a_failed_write_is_planned_again() {
        let mut r = NoAcceptRows::default();
        let w = wanted(&[(2, 51, "2001:db8::16")]);
        let (adds, _) = r.plan(&w);
        r.applied(&adds[0], false);
        assert_eq!(r.plan(&w).0, adds);
        r.applied(&adds[0], true);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn link_local_rows_are_per_interface_and_others_are_not() {
        let (k, o) = row(3, 7, "fe80::16".parse().expect("address"));
        assert_eq!((k.ifindex, o.ifindex, o.vrid), (3, 3, 7));
        let (k, o) = row(3, 7, "192.0.2.16".parse().expect("address"));
        assert_eq!((k.ifindex, o.ifindex), (0, 3));
        assert_eq!(&k.addr[..4], &[192, 0, 2, 16]);
    }

    #[test]
    fn an_owner_change_rewrites_the_row() {
        let mut r = NoAcceptRows::default();
        let (adds, _) = r.plan(&wanted(&[(2, 51, "192.0.2.16")]));
        apply(&mut r, &adds);
        let (adds, removes) = r.plan(&wanted(&[(2, 52, "192.0.2.16")]));
        assert_eq!(adds.len(), 1);
        assert!(removes.is_empty(), "the same key: rewritten in place, never absent");
    }
}

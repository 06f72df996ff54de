//! The VRRP wire format, smoltcp style: zero-copy `Packet` views with
//! checked constructors, and `Repr`s that parse and emit.

pub mod ah;
pub mod ip;
pub mod vrrp;

pub use vrrp::{AddrList, Auth, ChecksumForm, EmitError, Packet, Repr, RxIp, Version};

/// Address family of an advert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: 4-byte addresses, versions 2 and 3.
    V4,
    /// IPv6: 16-byte addresses, version 3 only.
    V6,
}

impl Family {
    /// Bytes per address.
    pub const fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// The code used in map keys (`maps::FAMILY_IPV4` / `FAMILY_IPV6`).
    pub const fn code(self) -> u8 {
        match self {
            Family::V4 => crate::maps::FAMILY_IPV4,
            Family::V6 => crate::maps::FAMILY_IPV6,
        }
    }

    /// From a map key's code.
    pub const fn from_code(code: u8) -> Option<Family> {
        match code {
            crate::maps::FAMILY_IPV4 => Some(Family::V4),
            crate::maps::FAMILY_IPV6 => Some(Family::V6),
            _ => None,
        }
    }
}

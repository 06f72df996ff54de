//! Verdicts: "accepted" or the precise reason an advert is rejected.
//!
//! The numbers are the index of the XDP program's counters and appear in
//! `bpftool map dump` output, so they are stable: only append, never
//! renumber.

/// Outcome of checking one IP protocol-112 packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// A well-formed advertisement, recorded in the peer map.
    Accepted = 0,
    /// Shorter than the 8-byte VRRP header, or truncated in the frame.
    TooShort = 1,
    /// Version is neither 2 nor 3, or version 2 over IPv6.
    BadVersion = 2,
    /// Type is not 1 (ADVERTISEMENT); RFC 5798 5.2.2.
    BadType = 3,
    /// VRID 0 is not a valid virtual router; RFC 5798 5.2.3.
    BadVrid = 4,
    /// TTL / hop limit is not 255; RFC 5798 7.1.
    BadTtl = 5,
    /// The message length does not match the count of addresses.
    LengthMismatch = 6,
    /// Checksum does not verify.
    BadChecksum = 7,
    /// v2 authentication type differs from the configured one.
    AuthTypeMismatch = 8,
    /// v2 simple password does not match.
    AuthFailure = 9,
    /// Retired: AH (auth type 2) was not supported before; no longer
    /// produced (a type-2 message not under an AH header, or under one for
    /// an instance without AH, is an `AuthTypeMismatch`, as in keepalived).
    AuthAhUnsupported = 10,
    /// v2 advertisement interval differs from ours; RFC 3768 7.1.
    IntervalMismatch = 11,
    /// Destination is neither the VRRP group nor our own unicast address.
    BadDestination = 12,
    /// v3 over IPv6 must come from a link-local address; RFC 5798 5.1.2.1.
    NotLinkLocal = 13,
    /// No instance is configured for this VRID on this interface and family:
    /// somebody else's, passed up untouched (checked before anything but
    /// the CARP shape, so a malformed one is passed too).
    UnknownVrid = 14,
    /// The instance has unicast peers and the source is not one of them.
    NotAPeer = 15,
    /// Our own advert, looped back to us.
    OwnAdvert = 16,
    /// A CARP packet (also IP protocol 112): passed up untouched.
    Carp = 17,
    /// A fragment: VRRP packets are never fragmented. Judged, like every
    /// verdict but CARP, only when the byte at the VRID's place names a
    /// VRID we serve; a later fragment has no VRRP header there, so whose
    /// it is cannot be told, and most go up as `UnknownVrid`.
    Fragment = 18,
    /// An advert under an IP Authentication Header (protocol 51, next
    /// header 112) for an instance with `auth_type AH` that passed every
    /// check the kernel can make (all but the ICV and the sequence
    /// number): passed up to the agent, which checks HMAC-MD5-96 and the
    /// replay counter. Not recorded in the peer map and never arms the
    /// master-down watch: an unauthenticated packet must not hold a backup
    /// down.
    AhToAgent = 19,
    /// An authentic AH advert whose sequence number is not above the last
    /// one accepted: a replay (keepalived logs "already processed"). Counted
    /// by the agent.
    AhReplay = 20,
}

impl Verdict {
    /// Number of verdicts; sizes per-verdict tables.
    pub const COUNT: usize = 21;

    /// Every verdict, in numeric order.
    pub const ALL: [Verdict; Self::COUNT] = [
        Verdict::Accepted,
        Verdict::TooShort,
        Verdict::BadVersion,
        Verdict::BadType,
        Verdict::BadVrid,
        Verdict::BadTtl,
        Verdict::LengthMismatch,
        Verdict::BadChecksum,
        Verdict::AuthTypeMismatch,
        Verdict::AuthFailure,
        Verdict::AuthAhUnsupported,
        Verdict::IntervalMismatch,
        Verdict::BadDestination,
        Verdict::NotLinkLocal,
        Verdict::UnknownVrid,
        Verdict::NotAPeer,
        Verdict::OwnAdvert,
        Verdict::Carp,
        Verdict::Fragment,
        Verdict::AhToAgent,
        Verdict::AhReplay,
    ];

    /// The verdict with number `n`, if there is one.
    pub const fn from_u32(n: u32) -> Option<Verdict> {
        if (n as usize) < Self::COUNT { Some(Self::ALL[n as usize]) } else { None }
    }

    /// Short snake_case name, used in logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::TooShort => "too_short",
            Verdict::BadVersion => "bad_version",
            Verdict::BadType => "bad_type",
            Verdict::BadVrid => "bad_vrid",
            Verdict::BadTtl => "bad_ttl",
            Verdict::LengthMismatch => "length_mismatch",
            Verdict::BadChecksum => "bad_checksum",
            Verdict::AuthTypeMismatch => "auth_type_mismatch",
            Verdict::AuthFailure => "auth_failure",
            Verdict::AuthAhUnsupported => "auth_ah_unsupported",
            Verdict::IntervalMismatch => "interval_mismatch",
            Verdict::BadDestination => "bad_destination",
            Verdict::NotLinkLocal => "not_link_local",
            Verdict::UnknownVrid => "unknown_vrid",
            Verdict::NotAPeer => "not_a_peer",
            Verdict::OwnAdvert => "own_advert",
            Verdict::Carp => "carp",
            Verdict::Fragment => "fragment",
            Verdict::AhToAgent => "ah_to_agent",
            Verdict::AhReplay => "ah_replay",
        }
    }

    /// Whether the XDP program lets the packet continue up the stack.
    /// What is invalid for an instance we serve is dropped; what belongs to
    /// somebody else goes up untouched: CARP, which shares protocol 112,
    /// and any packet for a VRID no instance serves on that interface and
    /// family (another VRRP daemon's, e.g. keepalived or FRR beside us
    /// during a migration, which must keep hearing its master).
    pub const fn passes(self) -> bool {
        matches!(self, Verdict::Accepted | Verdict::Carp | Verdict::UnknownVrid | Verdict::AhToAgent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_dense_and_stable() {
        for (i, v) in Verdict::ALL.iter().enumerate() {
            assert_eq!(*v as u32 as usize, i, "{v:?} out of place");
            assert_eq!(Verdict::from_u32(i as u32), Some(*v));
        }
        assert_eq!(Verdict::from_u32(Verdict::COUNT as u32), None);
        // Pinned values: these appear in bpftool output and dashboards.
        assert_eq!(Verdict::Accepted as u32, 0);
        assert_eq!(Verdict::BadTtl as u32, 5);
        assert_eq!(Verdict::Carp as u32, 17);
    }

    #[test]
    fn names_are_unique() {
        for a in Verdict::ALL {
            for b in Verdict::ALL {
                if a != b {
                    assert_ne!(a.name(), b.name());
                }
            }
        }
    }
}

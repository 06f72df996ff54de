//! VRRP advertisements, versions 2 (RFC 3768) and 3 (RFC 5798, updated by
//! RFC 9568).
//!
//! ```text
//! VRRPv2 (RFC 3768 5.1)
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Auth Type   |   Adver Int   |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         IP Address (1)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            .....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Authentication Data (1)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Authentication Data (2)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! VRRPv3 (RFC 5798 5.1)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! +                  IPvX Address(es) (4 or 16 bytes each)        +
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Family;
use crate::units::Centis;
use crate::{IPPROTO_VRRP, Verdict, checksum};

mod field {
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    pub const AUTH_TYPE: usize = 4;
    pub const ADVER_INT: usize = 5;
    pub const MAX_ADVER_INT: core::ops::Range<usize> = 4..6;
    pub const CHECKSUM: core::ops::Range<usize> = 6..8;
}

/// The fixed header shared by v2 and v3.
pub const HEADER_LEN: usize = 8;
/// v2's authentication data after the addresses.
pub const AUTH_LEN: usize = 8;
/// The only defined type (RFC 5798 5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// v2 auth type 0: none (RFC 3768 5.3.6).
pub const AUTH_NONE: u8 = 0;
/// v2 auth type 1: simple text password (RFC 2338 5.3.6.1).
pub const AUTH_SIMPLE: u8 = 1;
/// v2 auth type 2: IP Authentication Header (RFC 2338 5.3.6.2); the
/// message then travels under an AH header (`wire::ah`).
pub const AUTH_AH: u8 = 2;
/// The IPv4 group, 224.0.0.18 (RFC 5798 5.1.1.2).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 group, ff02::12 (RFC 5798 5.1.2.2).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// A CARP packet is 36 bytes, with authlen 7 in byte 3 (OpenBSD).
const CARP_LEN: usize = 36;
const CARP_AUTHLEN: u8 = 7;

/// Protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768, IPv4 only, whole-second intervals, optional password.
    V2 = 2,
    /// RFC 5798 / RFC 9568, IPv4 and IPv6, centisecond intervals.
    V3 = 3,
}

/// Message length for `version`, `family` and `count` addresses.
pub const fn expected_len(version: Version, family: Family, count: u8) -> usize {
    let auth = match version {
        Version::V2 => AUTH_LEN,
        Version::V3 => 0,
    };
    HEADER_LEN + family.addr_len() * count as usize + auth
}

/// A zero-copy view of a VRRP message (the IP payload, exactly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap, checking that the fixed header is there, so every header
    /// accessor is in bounds.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Verdict> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `TooShort` if the buffer cannot hold the fixed header.
    pub fn check_len(&self) -> Result<(), Verdict> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Verdict::TooShort) } else { Ok(()) }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the message.
    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.buffer.as_ref().is_empty()
    }

    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// Type nibble.
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// Virtual router ID.
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// Priority.
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// Count of addresses.
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// v2 authentication type.
    pub fn auth_type(&self) -> u8 {
        self.buffer.as_ref()[field::AUTH_TYPE]
    }

    /// v2 advertisement interval, seconds.
    pub fn adver_int(&self) -> u8 {
        self.buffer.as_ref()[field::ADVER_INT]
    }

    /// v3 Max Adver Int (the low 12 bits; the reserved nibble is ignored
    /// on receipt, RFC 5798 5.2.6).
    pub fn max_adver_int(&self) -> Centis {
        let b = &self.buffer.as_ref()[field::MAX_ADVER_INT];
        Centis(u16::from_be_bytes([b[0], b[1]]) & 0x0fff)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The address list, if the buffer holds `count` addresses of `family`.
    pub fn addr_bytes(&self, family: Family) -> Option<&[u8]> {
        let n = self.count() as usize * family.addr_len();
        self.buffer.as_ref().get(HEADER_LEN..HEADER_LEN + n)
    }

    /// v2 authentication data, if the buffer holds it.
    pub fn auth_data(&self) -> Option<[u8; AUTH_LEN]> {
        let start = HEADER_LEN + self.count() as usize * 4;
        let b = self.buffer.as_ref().get(start..start + AUTH_LEN)?;
        let mut out = [0u8; AUTH_LEN];
        out.copy_from_slice(b);
        Some(out)
    }

    /// Which checksum form verifies, if any (see `checksum_form`).
    pub fn verify_checksum(&self, version: Version, ip: &RxIp) -> Option<ChecksumForm> {
        let msg = self.buffer.as_ref();
        let (family, src, dst) = (ip.family(), addr_bytes(&ip.src), addr_bytes(&ip.dst));
        if family != addr_family(&ip.dst) {
            return None;
        }
        checksum_form(version, family, &src, &dst, msg.len(), checksum::add(0, msg))
    }
}

fn addr_family(a: &IpAddr) -> Family {
    match a {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// An address as the kernel side carries it: IPv4 in the first 4 bytes.
pub fn addr_bytes(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Which checksum form verifies a message of `msg_len` bytes whose
/// one's-complement sum (`checksum::add(0, msg)`) is `msg_sum`. v2 sums
/// the message only; v3 adds the pseudo-header (always over IPv6; over
/// IPv4 as RFC 5798 and keepalived do, while RFC 9568 and keepalived's
/// `v3_checksum_as_v2` leave it out, so both are accepted, and so is
/// keepalived < 1.3.6's group address in a unicast advert's pseudo-header).
///
/// Takes the sum rather than the bytes so the XDP program, which sums
/// packet memory itself, shares this decision.
pub fn checksum_form(
    version: Version,
    family: Family,
    src: &[u8; 16],
    dst: &[u8; 16],
    msg_len: usize,
    msg_sum: u32,
) -> Option<ChecksumForm> {
    // Both sums are folded below 0x20000, so adding them cannot overflow.
    let ok = |pseudo: u32| checksum::finish(pseudo + msg_sum) == 0;
    match (version, family) {
        (Version::V2, _) => ok(0).then_some(ChecksumForm::Plain),
        (Version::V3, Family::V6) => {
            ok(pseudo_v6_sum(src, dst, msg_len)).then_some(ChecksumForm::PseudoHeader)
        }
        (Version::V3, Family::V4) => {
            let d4 = [dst[0], dst[1], dst[2], dst[3]];
            if ok(pseudo_v4_sum(src, &d4, msg_len)) {
                Some(ChecksumForm::PseudoHeader)
            } else if ok(0) {
                Some(ChecksumForm::Plain)
            } else if d4[0] & 0xf0 != 0xe0 && ok(pseudo_v4_sum(src, &GROUP_V4.octets(), msg_len)) {
                Some(ChecksumForm::PseudoHeaderGroup)
            } else {
                None
            }
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set version and type.
    pub fn set_version_kind(&mut self, version: u8, kind: u8) {
        self.buffer.as_mut()[field::VER_TYPE] = (version << 4) | (kind & 0x0f);
    }

    /// Set the VRID.
    pub fn set_vrid(&mut self, v: u8) {
        self.buffer.as_mut()[field::VRID] = v;
    }

    /// Set the priority.
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }

    /// Set the count of addresses.
    pub fn set_count(&mut self, v: u8) {
        self.buffer.as_mut()[field::COUNT] = v;
    }

    /// Set v2 auth type and interval.
    pub fn set_v2_auth_interval(&mut self, auth_type: u8, secs: u8) {
        self.buffer.as_mut()[field::AUTH_TYPE] = auth_type;
        self.buffer.as_mut()[field::ADVER_INT] = secs;
    }

    /// Set v3 Max Adver Int; the reserved nibble is sent as zero.
    pub fn set_max_adver_int(&mut self, c: Centis) {
        self.buffer.as_mut()[field::MAX_ADVER_INT].copy_from_slice(&(c.0 & 0x0fff).to_be_bytes());
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Compute and set the checksum of the whole buffer for `version`
    /// sent with `ip` (pseudo-header for v3, unless v3 over IPv4 with
    /// `v3_checksum_as_v2`).
    pub fn fill_checksum(&mut self, version: Version, ip: &TxIp) {
        self.set_checksum(0);
        let msg = self.buffer.as_ref();
        let (src, dst) = (addr_bytes(&ip.src), addr_bytes(&ip.dst));
        let pseudo = match (version, ip.src, ip.dst) {
            (Version::V3, IpAddr::V6(_), IpAddr::V6(_)) => pseudo_v6_sum(&src, &dst, msg.len()),
            (Version::V3, IpAddr::V4(_), IpAddr::V4(_)) if !ip.v3_checksum_as_v2 => {
                pseudo_v4_sum(&src, &[dst[0], dst[1], dst[2], dst[3]], msg.len())
            }
            _ => 0,
        };
        let sum = checksum::finish(checksum::add(pseudo, msg));
        self.set_checksum(sum);
    }
}

/// Which checksum verified a received advert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumForm {
    /// Over the message only: v2, or v3 over IPv4 per RFC 9568 (keepalived's
    /// `v3_checksum_as_v2`, FRR without `checksum-with-ipv4-pseudoheader`).
    Plain,
    /// With the IP pseudo-header: v3 over IPv6, and v3 over IPv4 as
    /// keepalived and FRR send by default.
    PseudoHeader,
    /// v3 unicast over IPv4 with the group address 224.0.0.18 in the
    /// pseudo-header instead of the real destination: keepalived before
    /// 1.3.6 (its `old_unicast_checksum`).
    PseudoHeaderGroup,
}

/// One's-complement sum of the IPv4 pseudo-header (RFC 768 layout):
/// source, destination, zero, protocol, length.
fn pseudo_v4_sum(src: &[u8; 16], dst: &[u8; 4], len: usize) -> u32 {
    let mut sum = checksum::add(0, &src[..4]);
    sum = checksum::add(sum, dst);
    sum = checksum::add(sum, &[0, IPPROTO_VRRP]);
    checksum::add(sum, &(len as u16).to_be_bytes())
}

/// RFC 8200 8.1: source, destination, 32-bit length, 3 zero bytes, next
/// header.
fn pseudo_v6_sum(src: &[u8; 16], dst: &[u8; 16], len: usize) -> u32 {
    let mut sum = checksum::add(0, src);
    sum = checksum::add(sum, dst);
    sum = checksum::add(sum, &(len as u32).to_be_bytes());
    checksum::add(sum, &[0, 0, 0, IPPROTO_VRRP])
}

/// The IP addresses a message arrived with (for the v3 checksum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxIp {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
}

impl RxIp {
    /// The family of the addresses.
    pub fn family(&self) -> Family {
        match self.src {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// The IP addresses and options a message is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxIp {
    /// Source address.
    pub src: IpAddr,
    /// Destination: the group, or a unicast peer.
    pub dst: IpAddr,
    /// v3 over IPv4 without the pseudo-header (keepalived's
    /// `v3_checksum_as_v2`, RFC 9568).
    pub v3_checksum_as_v2: bool,
}

/// v2 authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0.
    None,
    /// Type 1: the 8 bytes of the password, zero padded.
    Simple([u8; AUTH_LEN]),
    /// Type 2: IPsec AH. The message's authentication data is zero; the
    /// ICV is in the AH header around it (`wire::ah`), and the key is not
    /// on the wire.
    Ah,
}

impl Auth {
    /// A simple password as keepalived makes it: longer ones are cut to 8
    /// bytes, shorter ones padded with zeros.
    pub fn simple(password: &[u8]) -> Auth {
        let mut b = [0u8; AUTH_LEN];
        let n = password.len().min(AUTH_LEN);
        b[..n].copy_from_slice(&password[..n]);
        Auth::Simple(b)
    }

    /// The wire code of the type.
    pub const fn code(&self) -> u8 {
        match self {
            Auth::None => AUTH_NONE,
            Auth::Simple(_) => AUTH_SIMPLE,
            Auth::Ah => AUTH_AH,
        }
    }
}

/// The addresses of an advert: borrowed from a received message, or from
/// the caller's list for one to send.
#[derive(Clone, Copy, Debug)]
pub enum AddrList<'a> {
    /// Raw bytes of `family` addresses, network order.
    Bytes(Family, &'a [u8]),
    /// IPv4 addresses.
    V4(&'a [Ipv4Addr]),
    /// IPv6 addresses.
    V6(&'a [Ipv6Addr]),
}

impl<'a> AddrList<'a> {
    /// Their family.
    pub fn family(&self) -> Family {
        match self {
            AddrList::Bytes(f, _) => *f,
            AddrList::V4(_) => Family::V4,
            AddrList::V6(_) => Family::V6,
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        match self {
            AddrList::Bytes(f, b) => b.len() / f.addr_len(),
            AddrList::V4(a) => a.len(),
            AddrList::V6(a) => a.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th address.
    pub fn get(&self, i: usize) -> Option<IpAddr> {
        match self {
            AddrList::Bytes(Family::V4, b) => {
                let s = b.get(i * 4..i * 4 + 4)?;
                Some(IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3])))
            }
            AddrList::Bytes(Family::V6, b) => {
                let s = b.get(i * 16..i * 16 + 16)?;
                let mut o = [0u8; 16];
                o.copy_from_slice(s);
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            }
            AddrList::V4(a) => a.get(i).copied().map(IpAddr::V4),
            AddrList::V6(a) => a.get(i).copied().map(IpAddr::V6),
        }
    }

    /// In order.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let this = *self;
        (0..this.len()).filter_map(move |i| this.get(i))
    }
}

impl PartialEq for AddrList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.family() == other.family() && self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for AddrList<'_> {}

/// Why an advert cannot be emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// The buffer is shorter than `Repr::buffer_len`.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// More than 255 addresses.
    TooManyAddresses {
        /// How many were given.
        count: usize,
    },
    /// v2 carries whole seconds up to 255; v3 up to 4095 centiseconds.
    IntervalNotRepresentable {
        /// The interval asked for.
        interval: Centis,
    },
    /// VRID 0 is not a virtual router.
    ZeroVrid,
    /// v2 is IPv4 only, or the IP addresses and the list differ in family.
    FamilyMismatch,
    /// v3 has no authentication field.
    AuthWithV3,
}

impl core::fmt::Display for EmitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EmitError::BufferTooSmall { need, have } => {
                write!(f, "buffer of {have} bytes, {need} needed")
            }
            EmitError::TooManyAddresses { count } => {
                write!(f, "{count} addresses, at most 255 fit in an advert")
            }
            EmitError::IntervalNotRepresentable { interval } => write!(
                f,
                "interval of {} cs cannot be sent (v2: whole seconds 1-255, v3: 1-4095 cs)",
                interval.0
            ),
            EmitError::ZeroVrid => f.write_str("VRID 0 is not valid"),
            EmitError::FamilyMismatch => {
                f.write_str("address family mismatch (VRRPv2 is IPv4 only; IP and VIPs must agree)")
            }
            EmitError::AuthWithV3 => f.write_str("VRRPv3 has no authentication"),
        }
    }
}

impl core::error::Error for EmitError {}

/// A decoded advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr<'a> {
    /// 2 or 3.
    pub version: Version,
    /// 1-255.
    pub vrid: u8,
    /// 0 (resigning) to 255 (address owner).
    pub priority: u8,
    /// v3 Max Adver Int; v2 Adver Int in whole seconds, as centiseconds.
    pub interval: Centis,
    /// v2 authentication; `Auth::None` for v3.
    pub auth: Auth,
    /// The virtual addresses.
    pub addrs: AddrList<'a>,
}

/// The header checks that need no instance state and no address list:
/// shared by `Repr::parse` and the XDP program's `classify`.
///
/// `msg_len` is the VRRP message length according to the IP header.
pub fn check_fixed<T: AsRef<[u8]>>(
    p: &Packet<T>,
    family: Family,
    msg_len: usize,
) -> Result<Version, Verdict> {
    if msg_len < HEADER_LEN {
        return Err(Verdict::TooShort);
    }
    // CARP shares protocol 112 and a first byte of 0x21 with VRRPv2. It is
    // always 36 bytes with authlen 7 in byte 3; a VRRPv2 advert with 7
    // addresses would be 44 bytes, so this shape is never VRRPv2. (A VRRPv3
    // advert with 7 IPv4 addresses is 36 bytes too, hence the version.)
    if family == Family::V4 && p.version() == 2 && msg_len == CARP_LEN && p.count() == CARP_AUTHLEN {
        return Err(Verdict::Carp);
    }
    let version = match (p.version(), family) {
        (2, Family::V4) => Version::V2,
        (3, _) => Version::V3,
        _ => return Err(Verdict::BadVersion),
    };
    if p.kind() != TYPE_ADVERTISEMENT {
        return Err(Verdict::BadType);
    }
    // RFC 5798 5.2.3: VRID 1-255.
    if p.vrid() == 0 {
        return Err(Verdict::BadVrid);
    }
    if msg_len != expected_len(version, family, p.count()) {
        return Err(Verdict::LengthMismatch);
    }
    if version == Version::V2 {
        match p.auth_type() {
            // Whether an AH message came under an AH header, and whether
            // the instance expects one, is `check_instance`'s to judge.
            AUTH_NONE | AUTH_SIMPLE | AUTH_AH => {}
            // RFC 3768 5.3.6: types other than 0-2 are not defined.
            _ => return Err(Verdict::AuthTypeMismatch),
        }
    }
    Ok(version)
}

impl<'a> Repr<'a> {
    /// Decode the message in `packet` that arrived with addresses `ip`.
    /// Checks everything the message itself can tell: header fields,
    /// length, v2 auth type, checksum (and says which form verified).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        ip: &RxIp,
    ) -> Result<(Repr<'a>, ChecksumForm), Verdict> {
        packet.check_len()?;
        let family = ip.family();
        let version = check_fixed(packet, family, packet.len())?;
        let form = packet.verify_checksum(version, ip).ok_or(Verdict::BadChecksum)?;
        let buf: &'a [u8] = packet.buffer.as_ref();
        let n = packet.count() as usize * family.addr_len();
        let addrs =
            AddrList::Bytes(family, buf.get(HEADER_LEN..HEADER_LEN + n).ok_or(Verdict::LengthMismatch)?);
        let (interval, auth) = match version {
            Version::V2 => {
                let data = packet.auth_data().ok_or(Verdict::LengthMismatch)?;
                let auth = match packet.auth_type() {
                    AUTH_SIMPLE => Auth::Simple(data),
                    AUTH_AH => Auth::Ah,
                    _ => Auth::None,
                };
                (Centis::from_secs(packet.adver_int()), auth)
            }
            Version::V3 => (packet.max_adver_int(), Auth::None),
        };
        let repr = Repr { version, vrid: packet.vrid(), priority: packet.priority(), interval, auth, addrs };
        Ok((repr, form))
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let count = self.addrs.len().min(255) as u8;
        expected_len(self.version, self.addrs.family(), count)
    }

    /// Write the message into the start of `buf` and return its length.
    /// No allocation; the checksum is filled in for `ip`.
    pub fn emit(&self, buf: &mut [u8], ip: &TxIp) -> Result<usize, EmitError> {
        let count = self.addrs.len();
        let count8 = u8::try_from(count).map_err(|_| EmitError::TooManyAddresses { count })?;
        if self.vrid == 0 {
            return Err(EmitError::ZeroVrid);
        }
        let family = self.addrs.family();
        let ip_family = match ip.src {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        let dst_family = match ip.dst {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        if ip_family != family
            || dst_family != family
            || (self.version == Version::V2 && family != Family::V4)
        {
            return Err(EmitError::FamilyMismatch);
        }
        let need = expected_len(self.version, family, count8);
        let have = buf.len();
        let out = buf.get_mut(..need).ok_or(EmitError::BufferTooSmall { need, have })?;
        let mut p = Packet::new_unchecked(&mut *out);
        p.set_version_kind(self.version as u8, TYPE_ADVERTISEMENT);
        p.set_vrid(self.vrid);
        p.set_priority(self.priority);
        p.set_count(count8);
        match self.version {
            Version::V2 => {
                let secs = self
                    .interval
                    .as_v2_seconds()
                    .filter(|s| *s > 0)
                    .ok_or(EmitError::IntervalNotRepresentable { interval: self.interval })?;
                p.set_v2_auth_interval(self.auth.code(), secs);
            }
            Version::V3 => {
                if self.interval.0 == 0 || self.interval > Centis::MAX_V3 {
                    return Err(EmitError::IntervalNotRepresentable { interval: self.interval });
                }
                if self.auth != Auth::None {
                    return Err(EmitError::AuthWithV3);
                }
                p.set_max_adver_int(self.interval);
            }
        }
        let alen = family.addr_len();
        for (i, a) in self.addrs.iter().enumerate() {
            let slot = &mut out[HEADER_LEN + i * alen..HEADER_LEN + (i + 1) * alen];
            match a {
                IpAddr::V4(a) => slot.copy_from_slice(&a.octets()),
                IpAddr::V6(a) => slot.copy_from_slice(&a.octets()),
            }
        }
        if let Auth::Simple(pw) = self.auth {
            let start = HEADER_LEN + count * alen;
            out[start..start + AUTH_LEN].copy_from_slice(&pw);
        } else if self.version == Version::V2 {
            let start = HEADER_LEN + count * alen;
            out[start..start + AUTH_LEN].fill(0);
        }
        Packet::new_unchecked(out).fill_checksum(self.version, ip);
        Ok(need)
    }
}

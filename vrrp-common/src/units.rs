//! Time in the protocol's own unit.

/// A duration in centiseconds, VRRPv3's unit for Max Adver Int
/// (RFC 5798 5.2.7). Integer math throughout: Skew_Time and
/// Master_Down_Interval are computed from these without floats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Centis(pub u16);

impl Centis {
    /// The largest value the 12-bit v3 field holds (40.95 s).
    pub const MAX_V3: Centis = Centis(0x0fff);

    /// Whole seconds, as VRRPv2 carries them, if this is a whole number
    /// of seconds that fits the 8-bit v2 field.
    pub const fn as_v2_seconds(self) -> Option<u8> {
        if self.0.is_multiple_of(100) && self.0 / 100 <= 255 { Some((self.0 / 100) as u8) } else { None }
    }

    /// From v2's whole seconds.
    pub const fn from_secs(s: u8) -> Centis {
        Centis(s as u16 * 100)
    }

    /// In microseconds, for timer arithmetic.
    pub const fn as_micros(self) -> u64 {
        self.0 as u64 * 10_000
    }
}

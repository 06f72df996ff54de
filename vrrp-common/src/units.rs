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

    /// RFC 5798 6.1 / RFC 3768 6.1 Skew_Time in microseconds for a backup
    /// of `priority` whose master advertises every `self`: v3 scales it by
    /// the interval, v2 counts it in seconds whatever the interval.
    pub const fn skew_micros(self, v3: bool, priority: u8) -> u64 {
        let weight = 256 - priority as u64;
        if v3 { weight * self.as_micros() / 256 } else { weight * 1_000_000 / 256 }
    }

    /// Master_Down_Interval in microseconds: 3 × Master_Adver_Interval
    /// (`self`) + Skew_Time.
    pub const fn master_down_micros(self, v3: bool, priority: u8) -> u64 {
        3 * self.as_micros() + self.skew_micros(v3, priority)
    }

    /// In microseconds, for timer arithmetic.
    pub const fn as_micros(self) -> u64 {
        self.0 as u64 * 10_000
    }
}

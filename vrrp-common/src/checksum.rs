//! The Internet checksum (RFC 1071) that VRRP uses: v2 over the message,
//! v3 over a pseudo-header and the message (RFC 5798 5.2.8).

/// Add `data` to a running one's-complement sum (16-bit big-endian words,
/// an odd trailing byte padded with zero).
pub fn add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    // Fold often enough that the u32 never overflows on long inputs.
    (sum & 0xffff) + (sum >> 16)
}

/// Fold the carries and complement: the value to put in the checksum field.
///
/// Two folds suffice for any u32 (the first leaves at most 0x1fffe, the
/// second at most 0xffff); a fixed count rather than a loop, because the
/// BPF verifier cannot see that a fold-until-done loop ends.
pub fn finish(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// Checksum of `data` alone (VRRPv2, and v3 without pseudo-header).
pub fn of(data: &[u8]) -> u16 {
    finish(add(0, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(add(0, &data)), !0xddf2);
    }

    #[test]
    fn verifies_to_zero() {
        let mut msg = [0x21, 51, 150, 1, 1, 1, 0, 0, 192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 0, 0];
        let c = of(&msg);
        msg[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(of(&msg), 0);
    }

    #[test]
    fn finish_folds_any_u32() {
        assert_eq!(finish(u32::MAX), !0xffff_u16);
        assert_eq!(finish(0x0001_ffff), !0x0001_u16);
        assert_eq!(finish(0), 0xffff);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(of(&[0x12]), of(&[0x12, 0x00]));
    }
}

//! tshark (Wireshark's dissector, an independent implementation) reads the
//! adverts our codec emits and must agree on every field, including
//! "checksum correct".

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use anyhow::{Context, Result};
use vrrp_common::Centis;
use vrrp_common::wire::vrrp::{GROUP_V4, GROUP_V6, TxIp};
use vrrp_common::wire::{AddrList, Auth, Repr, Version, ip};
use vrrp_tests::netns::run;
use vrrp_tests::privilege::require_tool;

struct Case {
    version: Version,
    vrid: u8,
    priority: u8,
    interval: u16,
    auth: Auth,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    src: IpAddr,
    dst: IpAddr,
}

impl Case {
    fn repr(&self) -> Repr<'_> {
        Repr {
            version: self.version,
            vrid: self.vrid,
            priority: self.priority,
            interval: Centis(self.interval),
            auth: self.auth,
            addrs: if self.v6.is_empty() { AddrList::V4(&self.v4) } else { AddrList::V6(&self.v6) },
        }
    }

    /// An Ethernet frame: IP header (ours) and the advert.
    fn frame(&self) -> Vec<u8> {
        let repr = self.repr();
        let mut vrrp = vec![0u8; repr.buffer_len()];
        let tx = TxIp { src: self.src, dst: self.dst, v3_checksum_as_v2: false };
        let n = repr.emit(&mut vrrp, &tx).expect("emit");
        // Destination MAC: the group's, or any unicast one; source: the
        // VRRP virtual router MAC (RFC 5798 7.3).
        let (dmac, ethertype): ([u8; 6], u16) = match self.dst {
            IpAddr::V4(d) if d.is_multicast() => ([0x01, 0, 0x5e, 0, 0, 0x12], 0x0800),
            IpAddr::V6(d) if d.is_multicast() => ([0x33, 0x33, 0, 0, 0, 0x12], 0x86dd),
            IpAddr::V4(_) => ([2, 0, 0, 0, 0, 2], 0x0800),
            IpAddr::V6(_) => ([2, 0, 0, 0, 0, 2], 0x86dd),
        };
        let mut f = Vec::new();
        f.extend_from_slice(&dmac);
        f.extend_from_slice(&[0, 0, 0x5e, 0, if ethertype == 0x0800 { 1 } else { 2 }, self.vrid]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        let mut hdr = [0u8; 40];
        let hlen = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => ip::emit_ipv4(&mut hdr, s, d, n as u16, 1),
            (IpAddr::V6(s), IpAddr::V6(d)) => ip::emit_ipv6(&mut hdr, s, d, n as u16),
            _ => None,
        }
        .expect("header");
        f.extend_from_slice(&hdr[..hlen]);
        f.extend_from_slice(&vrrp[..n]);
        f
    }

    /// What tshark should print, in the order of `FIELDS`.
    fn expected(&self) -> String {
        let (v2_int, v3_int) = match self.version {
            Version::V2 => ((self.interval / 100).to_string(), String::new()),
            Version::V3 => (String::new(), self.interval.to_string()),
        };
        let v4: Vec<String> = self.v4.iter().map(ToString::to_string).collect();
        let v6: Vec<String> = self.v6.iter().map(ToString::to_string).collect();
        let (auth_type, auth_string) = match (self.version, self.auth) {
            (Version::V3, _) => (String::new(), String::new()),
            (Version::V2, Auth::None) => ("0".into(), String::new()),
            (Version::V2, Auth::Ah) => ("2".into(), String::new()),
            (Version::V2, Auth::Simple(pw)) => {
                let end = pw.iter().position(|b| *b == 0).unwrap_or(8);
                ("1".into(), String::from_utf8_lossy(&pw[..end]).into_owned())
            }
        };
        [
            (self.version as u8).to_string(),
            "1".into(),
            self.vrid.to_string(),
            self.priority.to_string(),
            (self.v4.len() + self.v6.len()).to_string(),
            v2_int,
            v3_int,
            v4.join(","),
            v6.join(","),
            // 1 = "Good" in tshark's checksum status.
            "1".into(),
            auth_type,
            auth_string,
        ]
        .join("|")
    }
}

const FIELDS: [&str; 12] = [
    "vrrp.version",
    "vrrp.type",
    "vrrp.virt_rtr_id",
    "vrrp.prio",
    "vrrp.addr_count",
    "vrrp.adver_int",
    "vrrp.short_adver_int",
    "vrrp.ip_addr",
    "vrrp.ipv6_addr",
    "vrrp.checksum.status",
    "vrrp.auth_type",
    "vrrp.auth_string",
];

fn cases() -> Vec<Case> {
    let a4 = |s: &str| s.parse::<Ipv4Addr>().expect("v4");
    let a6 = |s: &str| s.parse::<Ipv6Addr>().expect("v6");
    let many: Vec<Ipv4Addr> = (1..=20).map(|i| Ipv4Addr::new(198, 51, 100, i)).collect();
    vec![
        Case {
            version: Version::V2,
            vrid: 55,
            priority: 150,
            interval: 100,
            auth: Auth::simple(b"e^Ho6HWa"),
            v4: vec![a4("192.0.2.130")],
            v6: vec![],
            src: IpAddr::V4(a4("192.0.2.20")),
            dst: IpAddr::V4(a4("192.0.2.52")),
        },
        Case {
            version: Version::V2,
            vrid: 1,
            priority: 255,
            interval: 25500,
            auth: Auth::None,
            v4: many.clone(),
            v6: vec![],
            src: IpAddr::V4(a4("198.51.100.200")),
            dst: IpAddr::V4(GROUP_V4),
        },
        Case {
            version: Version::V3,
            vrid: 255,
            priority: 0,
            interval: 10,
            auth: Auth::None,
            v4: vec![a4("192.0.2.133")],
            v6: vec![],
            src: IpAddr::V4(a4("192.0.2.20")),
            dst: IpAddr::V4(GROUP_V4),
        },
        Case {
            version: Version::V3,
            vrid: 55,
            priority: 100,
            interval: 4095,
            auth: Auth::None,
            v4: many,
            v6: vec![],
            src: IpAddr::V4(a4("192.0.2.20")),
            dst: IpAddr::V4(a4("192.0.2.52")),
        },
        Case {
            version: Version::V3,
            vrid: 66,
            priority: 120,
            interval: 100,
            auth: Auth::None,
            v4: vec![],
            v6: vec![a6("2001:db8::130"), a6("2001:db8::131")],
            src: IpAddr::V6(a6("fe80::20")),
            dst: IpAddr::V6(GROUP_V6),
        },
        Case {
            version: Version::V3,
            vrid: 67,
            priority: 1,
            interval: 50,
            auth: Auth::None,
            v4: vec![],
            v6: vec![a6("2001:db8::140")],
            src: IpAddr::V6(a6("fe80::20")),
            dst: IpAddr::V6(a6("2001:db8::52")),
        },
    ]
}

/// A classic pcap file (linktype 1, Ethernet).
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

#[test]
fn tshark_agrees_with_every_field_we_emit() -> Result<()> {
    if !require_tool("tshark_agrees_with_every_field_we_emit", "tshark") {
        return Ok(());
    }
    let cases = cases();
    let frames: Vec<Vec<u8>> = cases.iter().map(Case::frame).collect();
    let path = std::env::temp_dir().join(format!("vrrp-tshark-{}.pcap", std::process::id()));
    std::fs::write(&path, pcap(&frames)).context("writing pcap")?;
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&path).args(["-T", "fields", "-E", "separator=|"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = run(&mut cmd);
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8(out?.stdout).context("tshark output")?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cases.len(), "tshark printed:\n{text}");
    let mut report = String::new();
    for (case, line) in cases.iter().zip(&lines) {
        let want = case.expected();
        if *line != want {
            writeln!(report, "vrid {}: tshark {line:?}\n          want   {want:?}", case.vrid)?;
        }
    }
    assert!(report.is_empty(), "tshark disagrees ({}):\n{report}", FIELDS.join("|"));
    Ok(())
}

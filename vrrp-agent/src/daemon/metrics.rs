//! Prometheus metrics (`vrrp-agent run --metrics ADDR`), opt-in.
//!
//! The names and labels of keepalived's usual exporter
//! (github.com/mehdy/keepalived-exporter, `keepalived_*`) are kept, so that
//! existing dashboards and alerts work unchanged; what it lacks comes as
//! `vrrp_agent_*`. keepalived has no metrics of its own (the exporter
//! reads its SIGUSR dumps), hence a command-line option, not a keyword.
//!
//! A scrape asks the agent's loop for a snapshot (`Scrape`), so the text is
//! current and nothing is shared behind a lock; a loop that does not answer
//! within `ANSWER_WITHIN` gets the scrape a 503, which is itself a signal.
//! Rendering (`render`) is pure; the HTTP side is a minimal HTTP/1.0
//! responder (no HTTP framework is among the dependencies).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::machine::{Micros, State};

/// A scrape's request to the agent's loop: the reply goes here.
pub type Scrape = oneshot::Sender<String>;

/// How long a scrape waits for the loop.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// keepalived's numeric states, as the exporter reports them
/// (vrrp.h: VRRP_STATE_INIT 0, BACKUP 1, MASTER 2, FAULT 3).
pub fn keepalived_state(s: State) -> i64 {
    match s {
        State::Init => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}

/// One instance, as the loop sees it at the scrape.
#[derive(Clone, Debug, Default)]
pub struct InstanceView {
    /// `vrrp_instance` name.
    pub iname: String,
    /// Its interface.
    pub intf: String,
    /// VRID.
    pub vrid: u8,
    /// State (None: INIT).
    pub state: Option<State>,
    /// Configured priority.
    pub base_priority: u8,
    /// Priority after tracking.
    pub effective_priority: u8,
    /// `virtual_ipaddress`: address and the interface it goes on.
    pub vips: Vec<(IpAddr, String)>,
    /// `virtual_ipaddress_excluded`: likewise.
    pub excluded: Vec<(IpAddr, String)>,
    /// Adverts sent, priority-0 adverts sent.
    pub advert_sent: u64,
    /// Priority-0 adverts sent.
    pub pri_zero_sent: u64,
    /// Transitions into MASTER, out of MASTER.
    pub become_master: u64,
    /// Transitions out of MASTER.
    pub release_master: u64,
    /// Transitions by target state.
    pub transitions: BTreeMap<&'static str, u64>,
    /// The last takeover: from the last advert heard to MASTER.
    pub last_takeover: Option<Duration>,
    /// Unix time of the last transition, seconds.
    pub last_transition: f64,
    /// Peers heard: address, priority, adverts, age.
    pub peers: Vec<PeerView>,
}

/// One peer of an instance.
#[derive(Clone, Debug)]
pub struct PeerView {
    /// Its address.
    pub addr: IpAddr,
    /// Advertised priority.
    pub priority: u8,
    /// Valid adverts from it.
    pub adverts: u64,
    /// Since its last advert.
    pub age: Duration,
}

/// Everything a scrape shows.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Instances in configuration order.
    pub instances: Vec<InstanceView>,
    /// Tracked scripts: name, good.
    pub scripts: Vec<(String, bool)>,
    /// XDP verdict counters: interface, verdict, packets.
    pub verdicts: Vec<(String, &'static str, u64)>,
    /// Accept Mode drops: interface, reason, packets.
    pub no_accept: Vec<(String, &'static str, u64)>,
    /// "xdp" or "socket".
    pub receive: &'static str,
    /// The XDP attach still runs beside the start.
    pub attaching: bool,
}

type Labels = Vec<(&'static str, String)>;

fn common(i: &InstanceView) -> Labels {
    vec![("iname", i.iname.clone()), ("intf", i.intf.clone()), ("vrid", i.vrid.to_string())]
}

fn gauge(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    reg.register(name, help, f.clone());
    f
}

fn fgauge(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge<f64, AtomicU64>> {
    let f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    reg.register(name, help, f.clone());
    f
}

/// `name` without `_total`: the library appends it to counters.
fn counter(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

/// The exposition text (OpenMetrics) of `v`.
pub fn render(v: &View) -> String {
    let mut reg = Registry::default();
    let up = gauge(&mut reg, "keepalived_up", "Status");
    up.get_or_create(&Vec::new()).set(1);
    let state = gauge(&mut reg, "keepalived_vrrp_state", "State of vrrp");
    let excluded = gauge(&mut reg, "keepalived_vrrp_excluded_state", "State of vrrp with excluded VIP");
    let rcvd = counter(&mut reg, "keepalived_advertisements_received", "Advertisements received");
    let sent = counter(&mut reg, "keepalived_advertisements_sent", "Advertisements sent");
    let became = counter(&mut reg, "keepalived_become_master", "Became master");
    let release = counter(&mut reg, "keepalived_release_master", "Released master");
    let pz_sent = counter(&mut reg, "keepalived_priority_zero_sent", "Priority zero sent");
    let pz_rcvd = counter(&mut reg, "keepalived_priority_zero_received", "Priority zero received");
    let script = gauge(&mut reg, "keepalived_script_status", "Tracker Script Status");
    let base = gauge(&mut reg, "vrrp_agent_base_priority", "Configured priority of the instance");
    let eff = gauge(
        &mut reg,
        "vrrp_agent_effective_priority",
        "Priority after track_script/track_interface weights (what the adverts carry)",
    );
    let trans = counter(
        &mut reg,
        "vrrp_agent_transitions",
        "State transitions of the instance, by the state entered",
    );
    let takeover = fgauge(
        &mut reg,
        "vrrp_agent_last_takeover_seconds",
        "Last takeover: from the last advert heard from a peer to this node entering MASTER",
    );
    let last_tr = fgauge(
        &mut reg,
        "vrrp_agent_last_transition_timestamp_seconds",
        "Unix time of the instance's last state change",
    );
    let peer_pri =
        gauge(&mut reg, "vrrp_agent_peer_priority", "Priority in the last advert heard from the peer");
    let peer_age =
        fgauge(&mut reg, "vrrp_agent_peer_last_advert_age_seconds", "Since the peer's last advert");
    let peer_adv =
        counter(&mut reg, "vrrp_agent_peer_advertisements", "Valid adverts received from the peer");
    let verdicts = counter(
        &mut reg,
        "vrrp_agent_xdp_packets",
        "VRRP packets seen by the XDP program, by verdict (every verdict but accepted is a drop, by reason)",
    );
    let no_accept = counter(
        &mut reg,
        "vrrp_agent_no_accept_packets",
        "Packets to a non-accept master's VIPs handled by the XDP program, by verdict",
    );
    let receive = gauge(&mut reg, "vrrp_agent_receive_path", "Receive path in use (1 for the path labelled)");
    receive.get_or_create(&vec![("path", v.receive.to_owned())]).set(1);
    let up = gauge(
        &mut reg,
        "vrrp_agent_receive_path_up",
        "0 while the XDP attach still runs beside the start (no backup takes over before it is done), else 1",
    );
    up.get_or_create(&vec![]).set(i64::from(!v.attaching));
    for i in &v.instances {
        let l = common(i);
        let st = keepalived_state(i.state.unwrap_or(State::Init));
        // As the exporter: one series per VIP, labelled with the VIP's
        // interface; an instance without VIPs has one with ip_address "".
        for (addr, dev) in &i.vips {
            let mut vl =
                vec![("iname", i.iname.clone()), ("intf", dev.clone()), ("vrid", i.vrid.to_string())];
            vl.push(("ip_address", addr.to_string()));
            state.get_or_create(&vl).set(st);
        }
        if i.vips.is_empty() {
            let mut vl = l.clone();
            vl.push(("ip_address", String::new()));
            state.get_or_create(&vl).set(st);
        }
        for (addr, dev) in &i.excluded {
            let vl = vec![
                ("iname", i.iname.clone()),
                ("intf", dev.clone()),
                ("vrid", i.vrid.to_string()),
                ("ip_address", addr.to_string()),
            ];
            excluded.get_or_create(&vl).set(st);
        }
        let heard: u64 = i.peers.iter().map(|p| p.adverts).sum();
        rcvd.get_or_create(&l).inc_by(heard);
        sent.get_or_create(&l).inc_by(i.advert_sent);
        became.get_or_create(&l).inc_by(i.become_master);
        release.get_or_create(&l).inc_by(i.release_master);
        pz_sent.get_or_create(&l).inc_by(i.pri_zero_sent);
        // The peer table counts adverts, not priority-0 ones: a peer whose
        // last advert had priority 0 counts once (it resigned).
        pz_rcvd.get_or_create(&l).inc_by(i.peers.iter().filter(|p| p.priority == 0).count() as u64);
        base.get_or_create(&l).set(i64::from(i.base_priority));
        eff.get_or_create(&l).set(i64::from(i.effective_priority));
        for to in ["MASTER", "BACKUP", "FAULT"] {
            let mut tl = l.clone();
            tl.push(("state", to.to_owned()));
            trans.get_or_create(&tl).inc_by(i.transitions.get(to).copied().unwrap_or(0));
        }
        if let Some(d) = i.last_takeover {
            takeover.get_or_create(&l).set(d.as_secs_f64());
        }
        last_tr.get_or_create(&l).set(i.last_transition);
        for p in &i.peers {
            let mut pl = l.clone();
            pl.push(("peer", p.addr.to_string()));
            peer_pri.get_or_create(&pl).set(i64::from(p.priority));
            peer_age.get_or_create(&pl).set(p.age.as_secs_f64());
            peer_adv.get_or_create(&pl).inc_by(p.adverts);
        }
    }
    for (name, good) in &v.scripts {
        // The exporter's encoding: BAD 0, GOOD 1.
        script.get_or_create(&vec![("name", name.clone())]).set(i64::from(*good));
    }
    for (intf, verdict, n) in &v.verdicts {
        verdicts.get_or_create(&vec![("intf", intf.clone()), ("verdict", (*verdict).to_owned())]).inc_by(*n);
    }
    for (intf, verdict, n) in &v.no_accept {
        no_accept.get_or_create(&vec![("intf", intf.clone()), ("verdict", (*verdict).to_owned())]).inc_by(*n);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// Per-instance counters the status file does not keep, by instance
/// name: a reload may add, remove or reorder instances, and a counter must
/// stay with its `vrrp_instance` (keepalived's exporter labels by name).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Transitions by target state.
    pub transitions: std::collections::HashMap<String, BTreeMap<&'static str, u64>>,
    /// The last takeover.
    pub takeover: std::collections::HashMap<String, Duration>,
}

impl Counters {
    /// Instance `name` entered `to` at `now`; `last_heard` is the latest
    /// advert from its peers (monotonic µs), if any.
    pub fn transition(&mut self, name: &str, to: State, now: Micros, last_heard: Option<Micros>) {
        let state = match to {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        };
        *self.transitions.entry(name.to_owned()).or_default().entry(state).or_insert(0) += 1;
        if to == State::Master
            && let Some(h) = last_heard
        {
            self.takeover.insert(name.to_owned(), Duration::from_micros(now.0.saturating_sub(h.0)));
        }
    }
}

/// Serve `GET /metrics` on `listener` for as long as the agent runs,
/// asking the loop through `ask` for each scrape.
pub async fn serve(listener: TcpListener, ask: mpsc::Sender<Scrape>) {
    loop {
        let (mut conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ask = ask.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(&mut conn, &ask).await {
                log::debug!("metrics: {peer}: {e}");
            }
        });
    }
}

/// Read one request head (bounded, with a time limit) and answer it.
async fn answer(conn: &mut tokio::net::TcpStream, ask: &mpsc::Sender<Scrape>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head = tokio::time::timeout(Duration::from_secs(5), async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
            let n = conn.read(&mut chunk).await?;
            if n == 0 || buf.len() > 8192 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(head, Ok(Ok(()))) {
        return Ok(());
    }
    let line = String::from_utf8_lossy(buf.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
    let (code, ctype, body) = respond(&line, ask).await;
    let reply = format!(
        "HTTP/1.0 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}

/// The OpenMetrics media type, which Prometheus asks for first.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn respond(line: &str, ask: &mpsc::Sender<Scrape>) -> (&'static str, &'static str, String) {
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return ("405 Method Not Allowed", "text/plain", "GET only\n".to_owned());
    }
    match path.split('?').next() {
        Some("/metrics") => {}
        Some("/") => return ("200 OK", "text/plain", "vrrp-agent: metrics at /metrics\n".to_owned()),
        _ => return ("404 Not Found", "text/plain", "not found; try /metrics\n".to_owned()),
    }
    let (tx, rx) = oneshot::channel();
    if ask.send(tx).await.is_err() {
        return ("503 Service Unavailable", "text/plain", "the agent is stopping\n".to_owned());
    }
    match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok(text)) => ("200 OK", OPENMETRICS, text),
        _ => ("503 Service Unavailable", "text/plain", "the agent's loop did not answer\n".to_owned()),
    }
}

/// The next scrape; never, without `--metrics`.
pub async fn next_scrape(rx: &mut Option<mpsc::Receiver<Scrape>>) -> Option<Scrape> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the agent shows a scrape: its instances, scripts, and the XDP
/// program's counters and peer table.
pub(super) fn view(a: &super::agent::Agent) -> View {
    let now = super::timer::now();
    let peers = a.source.peers();
    let names = ifnames();
    let name_of = |idx: u32| names.get(&idx).cloned().unwrap_or_else(|| idx.to_string());
    let instances = a
        .insts
        .iter()
        .map(|i| {
            let dev =
                |v: &crate::config::model::Vip| v.dev.clone().unwrap_or_else(|| i.conf.interface.clone());
            InstanceView {
                iname: i.conf.name.clone(),
                intf: i.conf.interface.clone(),
                vrid: i.conf.vrid,
                state: Some(i.machine.state()),
                base_priority: i.conf.priority,
                effective_priority: i.machine.priority(),
                vips: i.conf.vips.iter().map(|v| (v.addr, dev(v))).collect(),
                excluded: i.conf.vips_excluded.iter().map(|v| (v.addr, dev(v))).collect(),
                advert_sent: i.stats.advert_sent,
                pri_zero_sent: i.stats.pri_zero_sent,
                become_master: i.stats.become_master,
                release_master: i.stats.release_master,
                transitions: a.counters.transitions.get(&i.conf.name).cloned().unwrap_or_default(),
                last_takeover: a.counters.takeover.get(&i.conf.name).copied(),
                last_transition: i.last_transition,
                peers: peers
                    .iter()
                    .filter(|(k, _)| i.owns(k))
                    .map(|(k, s)| PeerView {
                        addr: peer_addr(k),
                        priority: s.priority,
                        adverts: s.adverts,
                        age: Duration::from_micros(now.0.saturating_sub(s.last_seen_ns / 1000)),
                    })
                    .collect(),
            }
        })
        .collect();
    let scripts = a
        .checks
        .statuses
        .iter()
        .map(|(n, s)| (n.clone(), s.health() == crate::health::Health::Good))
        .collect();
    let (mut verdicts, mut no_accept) = (Vec::new(), Vec::new());
    if let super::source::Source::Xdp(x) = &a.source {
        if let Ok(c) = x.dp.counters() {
            verdicts = c.into_iter().map(|((idx, v), n)| (name_of(idx), v.name(), n)).collect();
        }
        if let Ok(c) = x.dp.no_accept_counters() {
            no_accept = c.into_iter().map(|((idx, v), n)| (name_of(idx), v.name(), n)).collect();
        }
    }
    View { instances, scripts, verdicts, no_accept, receive: a.source.kind(), attaching: a.attach.is_some() }
}

fn peer_addr(k: &vrrp_common::maps::PeerKey) -> IpAddr {
    let a = k.addr;
    if k.family == vrrp_common::maps::FAMILY_IPV4 {
        IpAddr::from([a[0], a[1], a[2], a[3]])
    } else {
        IpAddr::from(a)
    }
}

/// Interface names by index, from /sys/class/net (of this namespace).
fn ifnames() -> BTreeMap<u32, String> {
    let mut m = BTreeMap::new();
    for name in nix::net::if_::if_nameindex()
        .iter()
        .flat_map(|l| l.iter().map(|i| (i.index(), i.name().to_string_lossy().into_owned())))
    {
        m.insert(name.0, name.1);
    }
    m
}

/// Bind the metrics address; the listener is served by `serve`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View {
            instances: vec![InstanceView {
                iname: "VI_1".into(),
                intf: "eth0".into(),
                vrid: 51,
                state: Some(State::Master),
                base_priority: 100,
                effective_priority: 90,
                vips: vec![(IpAddr::from([192, 0, 2, 10]), "eth0".into())],
                excluded: vec![(IpAddr::from([192, 0, 2, 11]), "eth1".into())],
                advert_sent: 7,
                become_master: 1,
                transitions: [("MASTER", 1), ("BACKUP", 1)].into_iter().collect(),
                last_takeover: Some(Duration::from_millis(3250)),
                peers: vec![PeerView {
                    addr: IpAddr::from([192, 0, 2, 2]),
                    priority: 50,
                    adverts: 12,
                    age: Duration::from_millis(500),
                }],
                ..Default::default()
            }],
            scripts: vec![("chk".into(), false)],
            verdicts: vec![("eth0".into(), "bad_ttl", 3)],
            no_accept: vec![],
            receive: "xdp",
            attaching: false,
        }
    }

    #[test]
    fn exporter_names_labels_and_values() {
        let t = render(&view());
        for want in [
            "keepalived_up 1",
            r#"keepalived_vrrp_state{iname="VI_1",intf="eth0",vrid="51",ip_address="192.0.2.10"} 2"#,
            r#"keepalived_vrrp_excluded_state{iname="VI_1",intf="eth1",vrid="51",ip_address="192.0.2.11"} 2"#,
            r#"keepalived_advertisements_received_total{iname="VI_1",intf="eth0",vrid="51"} 12"#,
            r#"keepalived_advertisements_sent_total{iname="VI_1",intf="eth0",vrid="51"} 7"#,
            r#"keepalived_become_master_total{iname="VI_1",intf="eth0",vrid="51"} 1"#,
            r#"keepalived_release_master_total{iname="VI_1",intf="eth0",vrid="51"} 0"#,
            r#"keepalived_script_status{name="chk"} 0"#,
            r#"vrrp_agent_effective_priority{iname="VI_1",intf="eth0",vrid="51"} 90"#,
            r#"vrrp_agent_base_priority{iname="VI_1",intf="eth0",vrid="51"} 100"#,
            r#"vrrp_agent_transitions_total{iname="VI_1",intf="eth0",vrid="51",state="MASTER"} 1"#,
            r#"vrrp_agent_transitions_total{iname="VI_1",intf="eth0",vrid="51",state="FAULT"} 0"#,
            r#"vrrp_agent_last_takeover_seconds{iname="VI_1",intf="eth0",vrid="51"} 3.25"#,
            r#"vrrp_agent_peer_priority{iname="VI_1",intf="eth0",vrid="51",peer="192.0.2.2"} 50"#,
            r#"vrrp_agent_xdp_packets_total{intf="eth0",verdict="bad_ttl"} 3"#,
            "# TYPE keepalived_vrrp_state gauge",
            "# TYPE keepalived_advertisements_sent counter",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
    }

    #[test]
    fn an_instance_without_vips_has_an_empty_address() {
        let mut v = view();
        v.instances[0].vips.clear();
        v.instances[0].state = Some(State::Fault);
        let t = render(&v);
        assert!(
            t.contains(r#"keepalived_vrrp_state{iname="VI_1",intf="eth0",vrid="51",ip_address=""} 3"#),
            "{t}"
        );
    }

    #[test]
    fn takeover_is_measured_from_the_last_advert() {
        let mut c = Counters::default();
        c.transition("B", State::Backup, Micros(1_000), None);
        c.transition("B", State::Master, Micros(5_000_000), Some(Micros(1_500_000)));
        assert_eq!(c.transitions["B"]["MASTER"], 1);
        assert_eq!(c.transitions["B"]["BACKUP"], 1);
        assert_eq!(c.takeover.get("B"), Some(&Duration::from_micros(3_500_000)));
        assert_eq!(c.takeover.get("A"), None);
    }

    #[tokio::test]
    async fn http_get_metrics_and_errors() {
        let (tx, mut rx) = mpsc::channel::<Scrape>(4);
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let _ = r.send("x 1\n".to_owned());
            }
        });
        assert_eq!(respond("GET /metrics HTTP/1.1", &tx).await.2, "x 1\n");
        assert_eq!(respond("GET /nope HTTP/1.0", &tx).await.0, "404 Not Found");
        assert_eq!(respond("POST /metrics HTTP/1.0", &tx).await.0, "405 Method Not Allowed");
        // The receiver dropped: the agent is stopping.
        let (dead, _) = mpsc::channel::<Scrape>(1);
        assert_eq!(respond("GET /metrics HTTP/1.0", &dead).await.0, "503 Service Unavailable");
    }
}

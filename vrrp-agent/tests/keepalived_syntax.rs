//! keepalived's configuration syntax beyond keywords (keepalived.conf(5),
//! "CONDITIONAL CONFIGURATION", "PARAMETER SUBSTITUTION", "include"), seen
//! through `vrrp-agent check-config` as an operator runs it: one file
//! serves every node, and includes fail or go on as keepalived's do.

use std::path::PathBuf;
use std::process::Command;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("vrrp-syntax-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Exit code and stdout + stderr of `check-config`.
fn check(args: &[&str], path: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vrrp-agent"))
        .args(args)
        .arg("check-config")
        .arg("-f")
        .arg(path)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// One file for two nodes, as keepalived's users write it: conditional
/// lines pick the priority and state, definitions the interface and the
/// VIPs, a multi-line definition and a ~SEQ make further instances.
const SHARED: &str = r#"$IFACE=veth-no-such0
$VIPS=192.0.2.10/24 \
      192.0.2.11/24
@lb1 $PRIO=200
@^lb1 $PRIO=100
$INST=vrrp_instance VI_${N} { \
  interface $IFACE \
  virtual_router_id ${N} \
  priority $PRIO \
  virtual_ipaddress { \
    198.51.100.${N}/24 \
  } \
}

vrrp_instance VI_1 {
  interface $IFACE
  @lb1 state MASTER
  @^lb1 state BACKUP
  virtual_router_id 51
  priority $PRIO
  virtual_ipaddress {
    $VIPS
  }
}
~SEQ(N, 2, 3) $INST
"#;

#[test]
fn one_file_serves_every_node() {
    let dir = Dir::new("shared");
    let path = dir.file("keepalived.conf", SHARED);
    let (code, lb1) = check(&["--config-id", "lb1"], &path);
    assert_eq!(code, 0, "{lb1}");
    assert!(lb1.contains("3 instance(s)"), "{lb1}");
    assert!(
        lb1.contains("VI_1: interface veth-no-such0, VRID 51, priority 200")
            && lb1.contains("VIPs 192.0.2.10/24, 192.0.2.11/24"),
        "{lb1}"
    );
    assert!(lb1.contains("VI_2: interface veth-no-such0, VRID 2, priority 200"), "{lb1}");
    assert!(
        lb1.contains("VI_3: interface veth-no-such0, VRID 3, priority 200")
            && lb1.contains("198.51.100.3/24"),
        "{lb1}"
    );
    let (code, lb2) = check(&["--config-id", "lb2"], &path);
    assert_eq!(code, 0, "{lb2}");
    assert!(lb2.contains("VI_1: interface veth-no-such0, VRID 51, priority 100"), "{lb2}");
    assert!(lb2.contains("VI_3: interface veth-no-such0, VRID 3, priority 100"), "{lb2}");
}

#[test]
fn a_bad_sequence_is_located_and_never_a_backtrace() {
    let dir = Dir::new("seq");
    let path = dir.file("k.conf", "~SEQ(N, 1, -1, 5) vrrp_instance VI_$N {\n}\n");
    let (code, out) = check(&[], &path);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("{}:1:1: error: invalid ~SEQ", path.display())), "{out}");
    assert!(!out.to_lowercase().contains("backtrace"), "{out}");
}

const ONE: &str = "vrrp_instance VI_1 {\n  interface veth-no-such0\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.10/24\n  }\n}\n";

#[test]
fn includes_fail_or_go_on_as_keepalived_does() {
    let dir = Dir::new("incl");
    // Plain `include` of a missing file: keepalived logs "Config files
    // missing" and runs without it.
    let plain = dir.file("plain.conf", &format!("{ONE}include /nonexistent/vrrp-extra.conf\n"));
    let (code, out) = check(&[], &plain);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("plain.conf:8:1: warning: included file `/nonexistent/vrrp-extra.conf` does not exist"),
        "{out}"
    );
    // `includem` makes it an error.
    let strict = dir.file("strict.conf", &format!("{ONE}includem /nonexistent/vrrp-extra.conf\n"));
    let (code, out) = check(&[], &strict);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("strict.conf:8:1: error: included file"), "{out}");
    // An executable file is skipped by keepalived: a warning, or an
    // error under `includer`.
    use std::os::unix::fs::PermissionsExt;
    let exe = dir.file("extra.sh", "vrrp_instance VI_9 {\n}\n");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let skip = dir.file("skip.conf", &format!("{ONE}include extra.sh\n"));
    let (code, out) = check(&[], &skip);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is executable, not a configuration file: skipped"), "{out}");
    let refuse = dir.file("refuse.conf", &format!("{ONE}includer extra.sh\n"));
    let (code, out) = check(&[], &refuse);
    assert_eq!(code, 2, "{out}");
}

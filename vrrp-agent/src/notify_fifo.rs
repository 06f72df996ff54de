//! keepalived's notify FIFOs (`notify_fifo`, `vrrp_notify_fifo` and their
//! `*_script`s in global_defs): every state change of an instance is
//! written as one line, `INSTANCE "VI_1" MASTER 150`, and of a sync group
//! as `GROUP "G1" MASTER 0` (keepalived 2.2.7 `vrrp_notify.c`
//! `notify_fifo`: the priority of a group is 0), to each FIFO
//! configured, in the order the changes happen.
//!
//! As keepalived (`lib/notify.c` `fifo_open`): a missing FIFO is created
//! (mode 0644, owned by the given user, else the script user) and removed
//! again at exit; an existing one is used as it is. The FIFO's script is
//! started first, with the FIFO's path as its last argument, then the FIFO
//! is opened read-write and non-blocking, so that writing never blocks the
//! agent whether or not a reader is there (a full FIFO drops the line, as
//! keepalived's unchecked write does).
//!
//! The sync-group layer calls [`Fifos::group`] for each group transition.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::model::{Global, Report};
use crate::config::tree::Stmt;
use crate::health::runner::{self, RunAs};

/// One FIFO as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FifoConf {
    /// `notify_fifo` or `vrrp_notify_fifo` (the lines written are the
    /// same: the agent has only VRRP to report).
    pub keyword: &'static str,
    /// The FIFO's path.
    pub path: PathBuf,
    /// `USER [GROUP]` after the path: who owns a FIFO we create.
    pub owner: Option<(String, Option<String>)>,
    /// `*_script`: started with the FIFO's path as its last argument.
    pub script: Option<String>,
    /// The script's `USER [GROUP]`.
    pub script_user: Option<(String, Option<String>)>,
}

/// Read `notify_fifo`, `vrrp_notify_fifo`, `notify_fifo_script` or
/// `vrrp_notify_fifo_script` into `g.fifos`.
pub fn keyword(k: &str, st: &Stmt, g: &mut Global, r: &mut Report) {
    let (base, script) = match k {
        "notify_fifo" => ("notify_fifo", false),
        "vrrp_notify_fifo" => ("vrrp_notify_fifo", false),
        "notify_fifo_script" => ("notify_fifo", true),
        _ => ("vrrp_notify_fifo", true),
    };
    let Some((v, _)) = st.args.first() else {
        r.error(&st.loc, format!("No {k} specified"), format!("as in `{k} /run/keepalived.fifo`"));
        return;
    };
    let who = st.args.get(1).map(|(u, _)| (u.clone(), st.args.get(2).map(|(g, _)| g.clone())));
    let idx = match g.fifos.iter().position(|f| f.keyword == base) {
        Some(i) => i,
        None => {
            g.fifos.push(FifoConf {
                keyword: base,
                path: PathBuf::new(),
                owner: None,
                script: None,
                script_user: None,
            });
            g.fifos.len() - 1
        }
    };
    let f = &mut g.fifos[idx];
    if script {
        if f.script.is_some() {
            r.warn(&st.loc, format!("{k} already specified - ignoring {v}"), "one script per FIFO");
            return;
        }
        f.script = Some(v.clone());
        f.script_user = who;
    } else {
        if !f.path.as_os_str().is_empty() {
            r.warn(&st.loc, format!("{k} already specified - ignoring {v}"), "one FIFO per keyword");
            return;
        }
        f.path = PathBuf::from(v);
        f.owner = who;
    }
}

/// The line keepalived writes for a state change.
pub fn line(group: bool, name: &str, state: &str, priority: u8) -> String {
    format!("{} \"{name}\" {state} {priority}\n", if group { "GROUP" } else { "INSTANCE" })
}

struct Open {
    path: PathBuf,
    file: File,
    created: bool,
}

/// The FIFOs open for writing.
#[derive(Default)]
pub struct Fifos {
    open: Vec<Open>,
}

impl Fifos {
    /// Create (if missing) and open each configured FIFO, starting its
    /// script first. A FIFO that cannot be opened is logged and left out,
    /// as keepalived does. `default_user` is the script user scripts run
    /// as when the FIFO names none.
    pub fn open(confs: &[FifoConf], default_user: Option<RunAs>) -> Fifos {
        let mut open = Vec::new();
        for c in confs {
            if c.path.as_os_str().is_empty() {
                log::warn!("{}_script is set without {}: the script is not run", c.keyword, c.keyword);
                continue;
            }
            let owner = resolve(c.owner.as_ref()).unwrap_or(default_user);
            match Self::open_one(c, owner, default_user) {
                Ok(o) => open.push(o),
                Err(e) => log::error!("Unable to open {} {}: {e}", c.keyword, c.path.display()),
            }
        }
        Fifos { open }
    }

    fn open_one(c: &FifoConf, owner: Option<RunAs>, default_user: Option<RunAs>) -> std::io::Result<Open> {
        use nix::sys::stat::Mode;
        let mode = Mode::S_IRUSR | Mode::S_IWUSR | Mode::S_IRGRP | Mode::S_IROTH;
        let created = match nix::unistd::mkfifo(&c.path, mode) {
            Ok(()) => {
                if let Some(o) = owner
                    && let Err(e) = nix::unistd::chown(&c.path, Some(o.uid), Some(o.gid))
                {
                    log::warn!("Failed to set uid:gid for fifo {}: {e}", c.path.display());
                }
                true
            }
            Err(nix::errno::Errno::EEXIST) => false,
            Err(e) => return Err(e.into()),
        };
        if let Some(script) = &c.script {
            let mut argv = runner::argv(script);
            argv.push(c.path.display().to_string());
            let run_as = resolve(c.script_user.as_ref()).unwrap_or(default_user);
            runner::spawn_long(argv, run_as);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&c.path);
        match file {
            Ok(file) => {
                log::info!("Writing state changes to {} {}", c.keyword, c.path.display());
                Ok(Open { path: c.path.clone(), file, created })
            }
            Err(e) => {
                if created {
                    let _ = std::fs::remove_file(&c.path);
                }
                Err(e)
            }
        }
    }

    /// Whether any FIFO is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// An instance's new state (`MASTER`, `BACKUP`, `FAULT`, `STOP`) with
    /// its effective priority.
    pub fn instance(&mut self, name: &str, state: &str, priority: u8) {
        self.write(&line(false, name, state, priority));
    }

    /// A sync group's new state: keepalived writes priority 0 for groups.
    pub fn group(&mut self, name: &str, state: &str) {
        self.write(&line(true, name, state, 0));
    }

    fn write(&mut self, line: &str) {
        for o in &mut self.open {
            // One write(2) per line: a FIFO write of up to PIPE_BUF bytes
            // is atomic, so readers never see two lines interleaved.
            if let Err(e) = o.file.write_all(line.as_bytes()) {
                log::debug!("writing to {}: {e}", o.path.display());
            }
        }
    }

    /// Paths of the open FIFOs.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.open.iter().map(|o| o.path.as_path())
    }
}

impl Drop for Fifos {
    /// As keepalived's `fifo_close`: a FIFO we created is unlinked first,
    /// so that a script that reopens it in a loop cannot find it again.
    fn drop(&mut self) {
        for o in &self.open {
            if o.created {
                let _ = std::fs::remove_file(&o.path);
            }
        }
    }
}

fn resolve(who: Option<&(String, Option<String>)>) -> Option<Option<RunAs>> {
    let who = who?;
    match crate::health::user::resolve(Some(who), None, false) {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!("{e}: using the default script user");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_keepalived_s() {
        assert_eq!(line(false, "VI_1", "MASTER", 150), "INSTANCE \"VI_1\" MASTER 150\n");
        assert_eq!(line(true, "G1", "BACKUP", 0), "GROUP \"G1\" BACKUP 0\n");
    }

    #[test]
    fn a_missing_fifo_is_created_written_in_order_and_removed() {
        let dir = std::env::temp_dir().join(format!("vrrp-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("state.fifo");
        let conf = FifoConf {
            keyword: "notify_fifo",
            path: path.clone(),
            owner: None,
            script: None,
            script_user: None,
        };
        let mut f = Fifos::open(&[conf], None);
        assert!(!f.is_empty());
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&path).expect("created").file_type().is_fifo());
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect("reader");
        f.instance("VI_1", "BACKUP", 100);
        f.instance("VI_1", "MASTER", 100);
        f.group("G1", "MASTER");
        let mut got = String::new();
        use std::io::Read;
        let _ = reader.read_to_string(&mut got);
        assert_eq!(
            got,
            "INSTANCE \"VI_1\" BACKUP 100\nINSTANCE \"VI_1\" MASTER 100\nGROUP \"G1\" MASTER 0\n"
        );
        drop(f);
        assert!(!path.exists(), "a FIFO the agent created is removed at exit");
        let _ = std::fs::remove_dir_all(dir);
    }
}

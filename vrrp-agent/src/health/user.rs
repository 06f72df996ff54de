//! Which user scripts run as, and whether a script is safe to run, as
//! keepalived decides it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Group, User};

use super::runner::RunAs;

/// keepalived's default script user.
pub const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

/// Resolve `user [group]`: the script's own setting, else `script_user`
/// from global_defs, else `keepalived_script` if that user exists, else
/// root (Ok(None); the caller logs keepalived's warning). Err for a named
/// user or group that is missing: keepalived then refuses the script
/// (lib/notify.c set_default_script_user makes every later
/// get_default_script_user fail, so scripts without a user of their own
/// are removed), and so does `security`: with `enable_script_security`
/// and no `keepalived_script` user, keepalived refuses to fall back to root.
pub fn resolve(
    own: Option<&(String, Option<String>)>,
    global: Option<&(String, Option<String>)>,
    security: bool,
) -> Result<Option<RunAs>, String> {
    let named = own.or(global);
    let (name, group) = match named {
        Some((u, g)) => (u.as_str(), g.as_deref()),
        None => match User::from_name(DEFAULT_SCRIPT_USER) {
            Ok(Some(u)) => return Ok(Some(RunAs { uid: u.uid, gid: u.gid })),
            _ if security => {
                return Err(format!(
                    "default script user '{DEFAULT_SCRIPT_USER}' does not exist and enable_script_security forbids running scripts as root"
                ));
            }
            _ => return Ok(None),
        },
    };
    let user =
        User::from_name(name).ok().flatten().ok_or_else(|| format!("script user '{name}' does not exist"))?;
    let gid = match group {
        Some(g) => {
            Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| format!("script group '{g}' does not exist"))?
                .gid
        }
        None => user.gid,
    };
    Ok(Some(RunAs { uid: user.uid, gid }))
}

/// With `enable_script_security`: why `program` is unsafe to run, if it
/// is: it, or a directory on its path, can be written by a user other than
/// root (group/other write, or a non-root owner).
pub fn unsafe_reason(program: &str) -> Option<String> {
    let path = Path::new(program);
    if !path.is_absolute() {
        return Some(format!("{program} is not an absolute path"));
    }
    let mut p = Some(path);
    while let Some(cur) = p {
        match std::fs::metadata(cur) {
            Ok(m) => {
                if m.uid() != 0 {
                    return Some(format!("{} is owned by uid {}", cur.display(), m.uid()));
                }
                // Sticky directories such as /tmp are still writable by all.
                if m.mode() & 0o022 != 0 {
                    return Some(format!("{} is writable by a non-root user", cur.display()));
                }
            }
            Err(e) => return Some(format!("{}: {e}", cur.display())),
        }
        p = cur.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_owned_system_binary_is_safe_and_tmp_is_not() {
        assert_eq!(unsafe_reason("/bin/true"), None);
        let dir = std::env::temp_dir().join(format!("vrrp-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("check.sh");
        std::fs::write(&f, "#!/bin/sh\nexit 0\n").expect("write");
        let why = unsafe_reason(f.to_str().expect("utf-8")).expect("under /tmp: unsafe");
        assert!(why.contains("writable by a non-root user"), "{why}");
        assert!(unsafe_reason("relative.sh").is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}

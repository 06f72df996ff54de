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
/// root with keepalived's warning. Err for a named user that is missing.
pub fn resolve(
    own: Option<&(String, Option<String>)>,
    global: Option<&(String, Option<String>)>,
) -> Result<Option<RunAs>, String> {
    let named = own.or(global);
    let (name, group) = match named {
        Some((u, g)) => (u.as_str(), g.as_deref()),
        None => match User::from_name(DEFAULT_SCRIPT_USER) {
            Ok(Some(u)) => return Ok(Some(RunAs { uid: u.uid, gid: u.gid })),
            _ => {
                log::warn!(
                    "WARNING - default user '{DEFAULT_SCRIPT_USER}' for script execution does not exist - please create."
                );
                return Ok(None);
            }
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

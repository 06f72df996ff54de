//! Root-only tests: skip with a reason outside CI, fail under `CI=true`.

/// Whether the test may go on. Not root: under `CI=true` this panics (a
/// missing privilege is a failure there); otherwise it prints why the
/// test is skipped and returns false.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs root (network namespaces, XDP) and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces, XDP); run `cargo xtask test` as root");
    false
}

/// Fail (under CI) or skip when `tool` is not on PATH.
pub fn require_tool(test: &str, tool: &str) -> bool {
    let found =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    if found {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs `{tool}` on PATH and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: `{tool}` not installed (cargo xtask test installs it)");
    false
}

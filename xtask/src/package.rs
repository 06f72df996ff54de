//! `cargo xtask package`: the Debian package, built with `dpkg-deb` from a
//! staged tree: the binary (XDP program embedded), the systemd unit, man
//! pages and shell completions generated from the binary's own command
//! line, and the reference tutorial's configurations as examples.
//! Installing it starts nothing: the operator enables the unit.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::sh;

/// Debian's architecture name for this build.
fn deb_arch() -> Result<String> {
    sh::output(Command::new("dpkg").arg("--print-architecture"))
        .map(|s| s.trim().to_owned())
        .context("dpkg --print-architecture (is this Debian?)")
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, text).with_context(|| path.display().to_string())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let text = std::fs::read(from).with_context(|| from.display().to_string())?;
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(to, text)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

const POSTINST: &str = "#!/bin/sh\nset -e\n# Reload unit files; enabling and starting is the operator's choice.\n\
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n";
const PRERM: &str = "#!/bin/sh\nset -e\n# A removed agent must not leave its VIPs: stop it first (it resigns).\n\
if [ -d /run/systemd/system ] && [ \"$1\" = remove ]; then systemctl stop vrrp-agent.service || true; fi\n";
const POSTRM: &str =
    "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n";

/// Build the package from the binary of `profile` ("release" or "debug",
/// built first); returns the .deb's path.
pub fn build(release: bool) -> Result<PathBuf> {
    crate::build(release)?;
    let root = sh::root();
    let profile = if release { "release" } else { "debug" };
    let bin = root.join("target").join(profile).join("vrrp-agent");
    let version = env!("CARGO_PKG_VERSION");
    let arch = deb_arch()?;
    let name = format!("vrrp-agent_{version}_{arch}");
    let stage = root.join("target/package").join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    sh::step(&format!("staging {}", stage.display()));
    copy(&bin, &stage.join("usr/sbin/vrrp-agent"), 0o755)?;
    let unit = std::fs::read_to_string(root.join("contrib/vrrp-agent.service"))?
        .replace("/usr/local/sbin/", "/usr/sbin/");
    write(&stage.join("lib/systemd/system/vrrp-agent.service"), &unit, 0o644)?;
    let gen_dir = root.join("target/package/generated");
    let _ = std::fs::remove_dir_all(&gen_dir);
    sh::run(
        Command::new(&bin)
            .arg("generate")
            .arg("--man")
            .arg(gen_dir.join("man"))
            .arg("--completions")
            .arg(gen_dir.join("completions")),
    )?;
    let man_dir = stage.join("usr/share/man/man8");
    std::fs::create_dir_all(&man_dir)?;
    for e in std::fs::read_dir(gen_dir.join("man"))? {
        let e = e?;
        let to = man_dir.join(e.file_name());
        copy(&e.path(), &to, 0o644)?;
        // Debian policy: man pages compressed with gzip -9n.
        sh::run(Command::new("gzip").args(["-9n", "-f"]).arg(&to))?;
    }
    let c = gen_dir.join("completions");
    copy(&c.join("vrrp-agent.bash"), &stage.join("usr/share/bash-completion/completions/vrrp-agent"), 0o644)?;
    copy(&c.join("_vrrp-agent"), &stage.join("usr/share/zsh/vendor-completions/_vrrp-agent"), 0o644)?;
    copy(
        &c.join("vrrp-agent.fish"),
        &stage.join("usr/share/fish/vendor_completions.d/vrrp-agent.fish"),
        0o644,
    )?;
    let doc = stage.join("usr/share/doc/vrrp-agent");
    copy(&root.join("README.md"), &doc.join("README.md"), 0o644)?;
    for n in ["node1.conf", "node2.conf"] {
        copy(
            &root.join("tests/fixtures/tutorial").join(n),
            &doc.join("examples").join(format!("keepalived-{n}")),
            0o644,
        )?;
    }
    write(
        &doc.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: vrrp-agent\n\nFiles: *\nCopyright: the vrrp-agent authors\nLicense: see the source repository\n",
        0o644,
    )?;
    let size_kib = dir_size(&stage)? / 1024;
    let control = format!(
        "Package: vrrp-agent\nVersion: {version}\nArchitecture: {arch}\nMaintainer: vrrp-agent developers <vrrp-agent@example.invalid>\n\
         Installed-Size: {size_kib}\nDepends: libc6\nSuggests: bpftool\nSection: net\nPriority: optional\n\
         Description: eBPF-accelerated VRRP failover agent, keepalived-compatible\n \
         Runs the VRRP instances of an unchanged keepalived.conf, with an XDP fast\n \
         path that parses and filters adverts in the kernel.\n"
    );
    write(&stage.join("DEBIAN/control"), &control, 0o644)?;
    write(&stage.join("DEBIAN/postinst"), POSTINST, 0o755)?;
    write(&stage.join("DEBIAN/prerm"), PRERM, 0o755)?;
    write(&stage.join("DEBIAN/postrm"), POSTRM, 0o755)?;
    let deb = root.join("target/package").join(format!("{name}.deb"));
    sh::run(Command::new("dpkg-deb").args(["--root-owner-group", "-Zxz", "--build"]).arg(&stage).arg(&deb))?;
    println!("built {}", deb.display());
    Ok(deb)
}

fn dir_size(p: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() { dir_size(&e.path())? } else { m.len() };
    }
    Ok(n)
}

/// Install `deb` into a scratch root (`dpkg --root`, its maintainer
/// scripts run outside a chroot with DPKG_ROOT set), and check what an
/// operator relies on: the files are where they belong, the binary runs,
/// the unit passes `systemd-analyze verify`, nothing was started, and it
/// removes cleanly.
pub fn verify(deb: &Path) -> Result<()> {
    sh::step(&format!("installing {} into a scratch root", deb.display()));
    let root = sh::root().join("target/package/root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "")?;
    let dpkg = |args: &[&str]| {
        let mut c = Command::new("dpkg");
        c.arg(format!("--root={}", root.display()))
            // The scratch root has no libc6 package; the host's libc serves.
            .args(["--force-script-chrootless", "--force-not-root", "--force-depends", "--log=/dev/null"])
            .args(args);
        c
    };
    sh::run(dpkg(&["--install"]).arg(deb))?;
    for f in [
        "usr/sbin/vrrp-agent",
        "lib/systemd/system/vrrp-agent.service",
        "usr/share/man/man8/vrrp-agent.8.gz",
        "usr/share/man/man8/vrrp-agent-run.8.gz",
        "usr/share/bash-completion/completions/vrrp-agent",
        "usr/share/zsh/vendor-completions/_vrrp-agent",
        "usr/share/fish/vendor_completions.d/vrrp-agent.fish",
        "usr/share/doc/vrrp-agent/examples/keepalived-node1.conf",
    ] {
        ensure!(root.join(f).is_file(), "{f} is not installed");
    }
    let out = sh::output(Command::new(root.join("usr/sbin/vrrp-agent")).arg("info"))
        .context("installed binary runs")?;
    ensure!(out.contains("XDP object embedded: yes"), "the installed binary lacks its XDP program: {out}");
    let example = root.join("usr/share/doc/vrrp-agent/examples/keepalived-node1.conf");
    let st =
        Command::new(root.join("usr/sbin/vrrp-agent")).args(["check-config", "-f"]).arg(&example).status()?;
    ensure!(st.success(), "the example configuration does not pass check-config");
    if sh::output(Command::new("which").arg("systemd-analyze")).is_some() {
        // The unit names /usr/sbin/vrrp-agent, which the scratch root has.
        let unit = root.join("lib/systemd/system/vrrp-agent.service");
        let text = std::fs::read_to_string(&unit)?
            .replace("/usr/sbin/vrrp-agent", &root.join("usr/sbin/vrrp-agent").display().to_string());
        let check = root.join("vrrp-agent.service");
        std::fs::write(&check, text)?;
        let out = Command::new("systemd-analyze").arg("verify").arg(&check).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        // PID 1 here may not be systemd: only the unit's own findings count.
        let own: Vec<&str> = err.lines().filter(|l| l.contains("vrrp-agent.service")).collect();
        ensure!(own.is_empty(), "systemd-analyze verify: {}", own.join("\n"));
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("systemd-analyze is missing (package systemd) and CI=true forbids skipping");
    }
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status"))?;
    ensure!(
        status.contains("Package: vrrp-agent\nStatus: install ok installed"),
        "dpkg does not list it installed"
    );
    sh::run(&mut dpkg(&["--purge", "vrrp-agent"]))?;
    ensure!(!root.join("usr/sbin/vrrp-agent").exists(), "the binary outlived a purge");
    std::fs::remove_dir_all(&root)?;
    println!("package installs, runs, verifies and purges cleanly");
    Ok(())
}

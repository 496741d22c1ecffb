//! The Debian package (scripts/build-deb.sh): installed with apt, it has the binary, the boot
//! unit, the man page and the state directory, `edgenet deploy` works with it, and a purge
//! takes it all away. It changes the machine's installed packages, so it runs only as root
//! in CI (`CI` set), on a machine where edgenet is not installed already.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "edgenet"]).status();
    }
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "edgenet"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

#[test]
fn the_debian_package_installs_deploys_and_purges() {
    if !is_root() {
        eprintln!("skipped: needs root to install a package");
        return;
    }
    if std::env::var("CI").map_or(true, |v| v.is_empty()) {
        eprintln!("skipped: installs a package on this machine, so it runs only in CI (set CI=1)");
        return;
    }
    if installed() {
        eprintln!("skipped: an edgenet package is installed here already; it is left alone");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/build-deb.sh"))
        .env("EDGENET_DEB_BINARY", env!("CARGO_BIN_EXE_edgenet"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        deb.starts_with(root.join("target/debian"))
            || deb.to_string_lossy().contains("/target/debian/")
    );
    let state_existed = Path::new("/var/lib/edgenet").exists();

    let guard = Installed;
    let apt = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    assert!(
        apt.status.success(),
        "{}",
        String::from_utf8_lossy(&apt.stderr)
    );
    assert!(installed());
    let version = sh_out("/usr/bin/edgenet --version");
    assert!(version.starts_with("edgenet "), "{version}");
    for f in [
        "/lib/systemd/system/edgenet.service",
        "/usr/share/man/man1/edgenet.1.gz",
        "/usr/share/bash-completion/completions/edgenet",
        "/usr/share/zsh/vendor-completions/_edgenet",
        "/usr/share/fish/vendor_completions.d/edgenet.fish",
    ] {
        assert!(Path::new(f).is_file(), "{f}");
        assert!(std::fs::metadata(f).unwrap().len() > 0, "{f} is empty");
    }
    let man = sh_out("zcat /usr/share/man/man1/edgenet.1.gz");
    assert!(man.contains(".TH"), "not a man page: {man}");
    let bash = std::fs::read_to_string("/usr/share/bash-completion/completions/edgenet").unwrap();
    assert!(
        bash.contains("deploy") && bash.contains("edgenet"),
        "{bash}"
    );
    let mode = sh_out("stat -c %a /var/lib/edgenet");
    assert_eq!(mode.trim(), "700");
    let unit = std::fs::read_to_string("/lib/systemd/system/edgenet.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/edgenet deploy --config /etc/edgenet/config.json"));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let v = Command::new("systemd-analyze")
            .args(["verify", "--man=no", "/lib/systemd/system/edgenet.service"])
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }

    // The installed edgenet deploys and removes, in a namespace of the test's own.
    let ns = run_name("h8a", "pkg");
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
    let dir = tempfile::tempdir().unwrap();
    // Whatever a failing assertion leaves (node namespaces are named and live outside the
    // machine namespace): removed before the package is purged.
    let _deployments = Deployments {
        ns: ns.clone(),
        state_dirs: vec![
            dir.path().join("state").display().to_string(),
            "/var/lib/edgenet".into(),
        ],
    };
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 198.51.100.53\n").unwrap();
    let run = |args: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "nsenter --net=/run/netns/{ns} /usr/bin/edgenet --state-dir {d}/state --resolv-conf {d}/resolv.conf {args}",
                d = dir.path().display()
            ))
            .output()
            .unwrap()
    };
    let deployed = run("deploy");
    let removed = run("remove");
    // With the package's own state directory: remove empties it but keeps it (dpkg owns it),
    // still 0700, and `dpkg -V` finds nothing missing.
    let in_ns = |args: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "nsenter --net=/run/netns/{ns} /usr/bin/edgenet --resolv-conf {d}/resolv.conf {args}",
                d = dir.path().display()
            ))
            .output()
            .unwrap()
    };
    let deployed_default = in_ns("deploy");
    let removed_default = in_ns("remove");
    sh(&format!("ip netns del {ns}"));
    for out in [&deployed_default, &removed_default] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        Path::new("/var/lib/edgenet").is_dir(),
        "remove deleted the package's state directory"
    );
    assert!(!Path::new("/var/lib/edgenet/state.json").exists());
    assert_eq!(sh_out("stat -c %a /var/lib/edgenet").trim(), "700");
    let verify = Command::new("dpkg")
        .args(["-V", "edgenet"])
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stdout.is_empty(),
        "dpkg -V: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );

    drop(guard);
    assert!(!installed());
    assert!(!Path::new("/usr/bin/edgenet").exists());
    assert!(!Path::new("/lib/systemd/system/edgenet.service").exists());
    if !state_existed {
        assert!(
            !Path::new("/var/lib/edgenet").exists(),
            "purge leaves no state directory"
        );
    }
}

/// Runs `edgenet remove` on each state directory inside `ns`, then deletes `ns`.
struct Deployments {
    ns: String,
    state_dirs: Vec<String>,
}

impl Drop for Deployments {
    fn drop(&mut self) {
        for dir in &self.state_dirs {
            if Path::new(dir).join("state.json").exists() {
                let _ = Command::new("nsenter")
                    .arg(format!("--net=/run/netns/{}", self.ns))
                    .args(["/usr/bin/edgenet", "--state-dir", dir, "remove"])
                    .output();
            }
        }
        del_netns(&self.ns);
    }
}

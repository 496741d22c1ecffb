//! The rendered files checked by their real consumers' tools: `systemd-analyze verify` for the
//! units, `kubernetes-validate` (the Kubernetes OpenAPI schema, strict) for every Kubernetes
//! object, `nft -c` for the nftables snippet. A missing tool is a visible skip naming
//! scripts/deps.sh, which installs them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use edgenet_core::plan::Plan;
use edgenet_render::{render, LbProvider, NodeNamespace, RenderOptions, Rendered};

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn namespaces(plan: &Plan) -> BTreeMap<String, NodeNamespace> {
    plan.nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                NodeNamespace {
                    netns: format!("{}-0a1b2c", n.name),
                    resolv_conf: format!("/var/lib/edgenet/nodes/{}/resolv.conf", n.name),
                    proxy_env: format!("/var/lib/edgenet/nodes/{}/proxy.env", n.name),
                },
            )
        })
        .collect()
}

fn all_rendered() -> Vec<Rendered> {
    let mut out = Vec::new();
    for (config, machine, creates) in [
        (single("k3s", true, 10), None, true),
        (with_proxy(single("k8s", false, 10)), None, true),
        (scalable("k3s", 3, 1, false, 127), Some(0), true),
        (scalable("k3s", 3, 1, false, 0), Some(2), false),
        (with_proxy(scalable("k8s", 3, 3, true, 20)), Some(0), true),
        (scalable("k8s", 3, 3, false, 20), Some(1), false),
    ] {
        let plan = plan_of(&config, machine);
        for lb in [LbProvider::KubeVip, LbProvider::Metallb] {
            let opts = RenderOptions {
                lb,
                creates_cluster: creates,
                namespaces: namespaces(&plan),
                ..Default::default()
            };
            out.push(render(&plan, &opts).unwrap());
        }
    }
    out
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        eprintln!("skipped: systemd-analyze is not installed (scripts/deps.sh installs systemd)");
        return;
    }
    let mut verified = 0;
    for r in all_rendered() {
        for f in r.files.iter().filter(|f| f.target == "unit") {
            // A root with the system's own units (targets the unit names), the programs the
            // units start as stubs, and the rendered unit or drop-in over a stub main unit.
            let root = tempfile::tempdir().unwrap();
            let sys = Path::new("/usr/lib/systemd/system");
            std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
            let status = Command::new("cp")
                .arg("-r")
                .arg(sys)
                .arg(root.path().join("usr/lib/systemd/"))
                .status()
                .unwrap();
            assert!(status.success());
            for program in ["usr/local/bin/k3s", "usr/bin/containerd", "usr/bin/kubelet"] {
                let p = root.path().join(program);
                write(&p, "#!/bin/sh\n");
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .unwrap();
            }
            let rel = f.path.trim_start_matches('/');
            write(&root.path().join(rel), &f.contents);
            let unit_path = if let Some(dir) = f
                .path
                .strip_suffix(&format!("/{}", f.path.rsplit('/').next().unwrap()))
                .filter(|d| d.ends_with(".d"))
            {
                let main = dir.strip_suffix(".d").unwrap().to_string();
                let program = if main.ends_with("containerd.service") {
                    "/usr/bin/containerd"
                } else {
                    "/usr/bin/kubelet"
                };
                write(
                    &root.path().join(main.trim_start_matches('/')),
                    &format!("[Unit]\nDescription=stub\n[Service]\nExecStart={program}\n[Install]\nWantedBy=multi-user.target\n"),
                );
                main
            } else {
                f.path.clone()
            };
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(format!("--root={}", root.path().display()))
                .arg(&unit_path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.trim().is_empty(),
                "systemd-analyze verify {} ({}):\n{stderr}\n{}",
                f.path,
                f.node,
                f.contents
            );
            assert!(f.contents.contains("NetworkNamespacePath=/run/netns/"));
            assert!(f.contents.contains(":/etc/resolv.conf"));
            verified += 1;
        }
    }
    assert!(verified >= 6, "only {verified} units verified");
}

#[test]
fn a_broken_unit_is_caught_by_the_same_check() {
    // The check above can fail: a misspelt key makes systemd-analyze complain.
    if !have("systemd-analyze") {
        eprintln!("skipped: systemd-analyze is not installed (scripts/deps.sh installs systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("h9-broken.service");
    write(
        &unit,
        "[Service]\nNetworkNamespacePth=/run/netns/x\nExecStart=/bin/true\n",
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("NetworkNamespacePth"));
}

#[test]
fn kubernetes_objects_pass_the_kubernetes_schema() {
    if !have("kubernetes-validate") {
        eprintln!(
            "skipped: kubernetes-validate is not installed (scripts/deps.sh installs it with pip)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, r) in all_rendered().iter().enumerate() {
        for f in &r.files {
            if let Parsed::Objects(_) = parse(f) {
                let p = dir.path().join(format!("{i}-{}-{}.yaml", f.node, f.target));
                write(&p, &f.contents);
                paths.push(p);
            }
        }
    }
    assert!(paths.len() >= 10, "{} files", paths.len());
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg("--quiet")
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubernetes-validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it would catch an invented field.
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&paths[0]).unwrap().replacen(
        "metadata:",
        "metadata:\n  bogus: 1",
        1,
    );
    write(&bad, &text);
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg("--quiet")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted an unknown field"
    );
}

#[test]
fn nftables_snippet_is_accepted_by_nft() {
    if !have("nft") || !have("unshare") {
        eprintln!("skipped: nft or unshare is not installed (scripts/deps.sh installs nftables, util-linux)");
        return;
    }
    if !is_root() {
        eprintln!("skipped: needs root (nft -c in a private network namespace)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for r in all_rendered() {
        let f = r.files.iter().find(|f| f.target == "nftables").unwrap();
        let p = dir.path().join("ports.nft");
        write(&p, &f.contents);
        let base = dir.path().join("base.nft");
        write(&base, USER_FIREWALL);
        // The snippet adds to the user's own forward chain: load that first, then the snippet.
        let out = Command::new("unshare")
            .args(["-n", "sh", "-c", "nft -f \"$0\" && nft -f \"$1\""])
            .arg(&base)
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft -c:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            f.contents
        );
    }
}

/// Debian's /etc/nftables.conf table, with dropping input and forward chains.
const USER_FIREWALL: &str = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tiif lo accept\n\t\tct state established,related accept\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n}\n";

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// The rendered ports file letting a real TCP connection through a dropping forward chain to a
// node behind the bridge: crates/cli/tests/rendered_firewall.rs.

#[test]
fn the_node_exec_wrapper_runs_the_command_inside_the_node_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let plan = plan_of(&single("k3s", false, 0), None);
    let node = &plan.nodes[0];
    let netns = format!("f9w{}", std::process::id());
    let ns = NodeNamespace {
        netns: netns.clone(),
        resolv_conf: "/etc/resolv.conf".into(),
        proxy_env: "/dev/null".into(),
    };
    let opts = RenderOptions {
        namespaces: [(node.name.clone(), ns)].into(),
        ..Default::default()
    };
    let r = render(&plan, &opts).unwrap();
    let f = r
        .files
        .iter()
        .find(|f| f.target == "node-exec")
        .expect("a wrapper");
    assert_eq!(f.mode, 0o755);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("wrapper");
    write(&script, &f.contents);
    run("ip", &["netns", "add", &netns]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(netns.clone());
    run(
        "ip",
        &[
            "-n",
            &netns,
            "link",
            "add",
            "f9marker",
            "type",
            "veth",
            "peer",
            "name",
            "f9marker2",
        ],
    );
    let out = Command::new("sh")
        .arg(&script)
        .args(["ip", "-o", "link"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let links = String::from_utf8_lossy(&out.stdout);
    assert!(links.contains("f9marker"), "not inside {netns}: {links}");
    let out = Command::new("sh").arg(&script).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no command: usage");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

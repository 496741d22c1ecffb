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
        let out = Command::new("unshare")
            .args(["-n", "nft", "-c", "-f"])
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

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

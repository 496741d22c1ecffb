//! Do the Kubernetes files on the node (or under `render --out DIR/<node>`) agree with the plan?
//!
//! Every file `render` produces for the node is rendered again from the plan and compared with
//! the one on disk by meaning: YAML as data, environment files and units key by key, resolv.conf
//! by its servers. Secrets (tokens, CA hashes) are not compared; the choices the plan does not
//! fix (which machine creates the cluster, kube-vip or MetalLB) take the rendering closest on
//! the files that encode the choice, and every difference of that rendering is named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgenet_core::plan::{NodePlan, Plan};
use edgenet_render::{render, LbProvider, NodeNamespace, RenderOptions, RenderedFile};
use serde_json::Value;

use crate::report::Check;

/// Keys whose values are secrets or the user's to fill: never compared.
const NOT_COMPARED: &[&str] = &[
    "token",
    "token-file",
    "bootstrapTokens",
    "caCertHashes",
    "certificateKey",
    "cluster-init",
    "server",
];

/// Where a rendered file lies under `root` (`/etc/x` → `root/etc/x`, `C:/x` → `root/C/x`).
fn on_disk(root: &Path, f: &RenderedFile) -> PathBuf {
    let rel = f.relative_out_path();
    let rel = rel.split_once('/').map_or(rel.as_str(), |(_, r)| r);
    root.join(rel)
}

/// One line: no newlines, no long tails of parser internals.
fn one_line(text: &str) -> String {
    let mut s: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 120 {
        s = s.chars().take(117).collect::<String>() + "...";
    }
    s
}

fn json_diffs(at: &str, have: &Value, want: &Value, out: &mut Vec<String>) {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => {
            let mut keys: Vec<&String> = h.keys().chain(w.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if NOT_COMPARED.contains(&k.as_str()) {
                    continue;
                }
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (h.get(k), w.get(k)) {
                    (Some(a), Some(b)) => json_diffs(&path, a, b, out),
                    (None, Some(b)) => out.push(format!(
                        "{path} is missing, the plan says {}",
                        one_line(&b.to_string())
                    )),
                    (Some(_), None) => out.push(format!("{path} is set, the plan has no such key")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(h), Value::Array(w)) if h.len() == w.len() => {
            for (i, (a, b)) in h.iter().zip(w).enumerate() {
                json_diffs(&format!("{at}[{i}]"), a, b, out);
            }
        }
        _ if have != want => out.push(format!(
            "{at} is {}, the plan says {}",
            one_line(&have.to_string()),
            one_line(&want.to_string())
        )),
        _ => {}
    }
}

/// `KEY=value` pairs of an environment file or a systemd unit (`[Section] Key` for units;
/// `Environment="K=V"` split into its variable).
fn pairs(text: &str, unit: bool) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            out.entry(format!("{section} {line}"))
                .or_default()
                .push(String::new());
            continue;
        };
        let (k, v) = match (k.trim(), v.trim()) {
            ("Environment", v) => {
                let v = v.trim_matches('"');
                match v.split_once('=') {
                    Some((name, value)) => (name.to_string(), value.to_string()),
                    None => ("Environment".to_string(), v.to_string()),
                }
            }
            (k, v) if unit => (format!("{section} {k}"), v.to_string()),
            (k, v) => (k.to_string(), v.to_string()),
        };
        out.entry(k).or_default().push(v);
    }
    out
}

fn pair_diffs(
    have: &BTreeMap<String, Vec<String>>,
    want: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<String>,
) {
    let mut keys: Vec<&String> = have.keys().chain(want.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let show = |v: Option<&Vec<String>>| match v {
            None => "unset".to_string(),
            Some(v) => format!(
                "{:?}",
                edgenet_core::redact::redact_credentials(&v.join(" "))
            ),
        };
        if have.get(k) != want.get(k) {
            out.push(format!(
                "{k} is {}, the plan says {}",
                show(have.get(k)),
                show(want.get(k))
            ));
        }
    }
}

/// The differences of one file; `Err` when it does not parse.
fn file_diffs(f: &RenderedFile, have: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    match f.target.as_str() {
        "k3s-token" => {}
        "k3s-config" | "kubeadm" | "kube-vip" | "lb" | "calico" => {
            let h = edgenet_render::yaml::documents(have).map_err(|e| one_line(&e))?;
            let w = edgenet_render::yaml::documents(&f.contents).map_err(|e| one_line(&e))?;
            json_diffs("", &Value::Array(h), &Value::Array(w), &mut out);
        }
        "proxy-env" => pair_diffs(&pairs(have, false), &pairs(&f.contents, false), &mut out),
        "unit" => {
            let h = pairs(have, true);
            pair_diffs(&h, &pairs(&f.contents, true), &mut out);
            // A unit that points at a namespace that is gone would run nowhere.
            for (k, v) in &h {
                if k.ends_with("NetworkNamespacePath") {
                    for ns in v {
                        if !Path::new(ns).exists() {
                            out.push(format!("NetworkNamespacePath {ns} does not exist"));
                        }
                    }
                }
            }
        }
        "resolv" => {
            let servers = |t: &str| -> Vec<String> {
                t.lines()
                    .filter_map(|l| l.trim().strip_prefix("nameserver "))
                    .map(|s| s.trim().to_string())
                    .collect()
            };
            let (h, w) = (servers(have), servers(&f.contents));
            if h != w {
                out.push(format!("names {h:?}, the plan's DNS servers are {w:?}"));
            }
        }
        _ => {
            // Scripts: line by line, secrets masked.
            let norm = |t: &str| -> Vec<String> {
                t.lines()
                    .map(|l| edgenet_core::redact::redact_credentials(l.trim()))
                    .filter(|l| !l.is_empty())
                    .collect()
            };
            let (h, w) = (norm(have), norm(&f.contents));
            if let Some((a, b)) = h.iter().zip(&w).find(|(a, b)| a != b) {
                out.push(format!(
                    "has {:?} where the plan renders {:?}",
                    one_line(a),
                    one_line(b)
                ));
            } else if h.len() != w.len() {
                out.push(format!(
                    "has {} lines, the plan renders {}",
                    h.len(),
                    w.len()
                ));
            }
        }
    }
    Ok(out)
}

/// Differences between the files under `root` and the plan; `None` when no file is there.
pub fn differences(
    plan: &Plan,
    node: &NodePlan,
    namespace: Option<&NodeNamespace>,
    root: &Path,
) -> Option<Vec<String>> {
    // Per rendering: each on-disk file's rendered contents and differences.
    type Compared = BTreeMap<String, (String, Vec<String>)>;
    let mut variants: Vec<Compared> = Vec::new();
    for creates_cluster in [true, false] {
        for lb in [LbProvider::KubeVip, LbProvider::Metallb] {
            let opts = RenderOptions {
                lb,
                creates_cluster,
                namespaces: namespace
                    .map(|ns| [(node.name.clone(), ns.clone())].into())
                    .unwrap_or_default(),
                ..Default::default()
            };
            let Ok(rendered) = render(plan, &opts) else {
                continue;
            };
            let mut compared = Compared::new();
            for f in rendered.files.iter().filter(|f| f.node == node.name) {
                let path = on_disk(root, f);
                let Ok(have) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let name = f.path.as_str();
                let diffs = match file_diffs(f, &have) {
                    Ok(d) => d.into_iter().map(|d| format!("{name}: {d}")).collect(),
                    Err(e) => vec![format!("{name} does not parse: {e}")],
                };
                compared.insert(f.path.clone(), (f.contents.clone(), diffs));
            }
            if !compared.is_empty() {
                variants.push(compared);
            }
        }
    }
    // The choice is read from the files that encode it: those every rendering has but with
    // different contents (kubeadm Init or Join, K3s's config). Counting all differences
    // instead would let edits to files only one rendering has (the init node's add-ons) tip
    // the choice and hide them behind an invented Init-vs-Join difference.
    let contested = |path: &String| {
        let contents: Vec<&String> = variants
            .iter()
            .filter_map(|v| v.get(path).map(|(c, _)| c))
            .collect();
        contents.len() == variants.len() && contents.iter().any(|c| *c != contents[0])
    };
    let score = |v: &Compared| {
        let on_choice: usize = v
            .iter()
            .filter(|(p, _)| contested(p))
            .map(|(_, (_, d))| d.len())
            .sum();
        let all: usize = v.values().map(|(_, d)| d.len()).sum();
        (on_choice, all)
    };
    variants
        .iter()
        .min_by_key(|v| score(v))
        .map(|v| v.values().flat_map(|(_, d)| d.clone()).collect())
}

pub fn check(
    plan: &Plan,
    node: &NodePlan,
    namespace: Option<&NodeNamespace>,
    root: &Path,
) -> Check {
    let scope = node.name.as_str();
    match differences(plan, node, namespace, root) {
        None => Check::skip(scope, "rendered-files", format!("no rendered Kubernetes files under {}", root.display())),
        Some(d) if d.is_empty() => Check::pass(scope, "rendered-files", format!("the files under {} agree with the plan", root.display())),
        Some(d) => Check::fail(
            scope,
            "rendered-files",
            d.join("; "),
            "edgenet render --out DIR again and install the files (README), then restart K3s or the kubelet",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::config::load;
    use edgenet_core::plan;
    use edgenet_core::validate::Context;

    fn plan_of(distribution: &str, windows: bool) -> Plan {
        let mut machine = serde_json::json!({"LinuxNode": {}});
        if windows {
            machine["WindowsNode"] = serde_json::json!({});
        }
        let config = serde_json::json!({
            "Init": {"ServiceIPRangeSize": 4},
            "Network": {
                "DnsServers": ["192.0.2.53"],
                "Ip4AddressPrefix": "192.168.77.0/24",
                "Proxy": {"Http": "http://proxy.example:3128", "No": "corp.example"}
            },
            "Machines": [machine],
            "Edgenet": {"Distribution": distribution, "MachineName": "edge01"}
        });
        let loaded = load(config.to_string().as_bytes()).unwrap();
        plan::build(&loaded.config, &Context::offline("test", "edge01")).unwrap()
    }

    fn write_all(plan: &Plan, node: &NodePlan, ns: Option<&NodeNamespace>, root: &Path) {
        let opts = RenderOptions {
            namespaces: ns
                .map(|ns| [(node.name.clone(), ns.clone())].into())
                .unwrap_or_default(),
            ..Default::default()
        };
        let r = render(plan, &opts).unwrap();
        for f in r.files.iter().filter(|f| f.node == node.name) {
            let path = on_disk(root, f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &f.contents).unwrap();
        }
    }

    /// Replaces `from` by `to` in the file at `rel` and returns the one-line FAIL detail.
    fn edited(
        plan: &Plan,
        node: &NodePlan,
        root: &Path,
        rel: &str,
        from: &str,
        to: &str,
    ) -> String {
        let path = root.join(rel);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(text.contains(from), "{rel} has no {from:?}:\n{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let c = check(plan, node, None, root);
        std::fs::write(&path, text).unwrap();
        assert_eq!(c.status, crate::Status::Fail, "{rel}: {c:?}");
        assert!(!c.detail.contains('\n'), "one line: {}", c.detail);
        c.detail
    }

    #[test]
    fn every_rendered_file_is_compared_by_meaning() {
        for distribution in ["k3s", "k8s"] {
            let plan = plan_of(distribution, true);
            let node = &plan.nodes[0];
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            assert_eq!(
                differences(&plan, node, None, root),
                None,
                "no files: not judged"
            );
            write_all(&plan, node, None, root);
            assert_eq!(
                differences(&plan, node, None, root),
                Some(vec![]),
                "{distribution}"
            );

            let (resolv, env) = if distribution == "k3s" {
                (
                    "etc/rancher/k3s/resolv.conf",
                    "etc/systemd/system/k3s.service.env",
                )
            } else {
                (
                    "etc/kubernetes/edgenet/resolv.conf",
                    "etc/systemd/system/containerd.service.d/http-proxy.conf",
                )
            };
            let d = edited(&plan, node, root, resolv, "192.0.2.53", "8.8.8.8");
            assert!(d.contains("8.8.8.8") && d.contains("192.0.2.53"), "{d}");
            let d = edited(&plan, node, root, env, "corp.example", "other.example");
            assert!(d.contains("NO_PROXY") && d.contains("other.example"), "{d}");
            let d = edited(&plan, node, root, env, "HTTP_PROXY=", "HTTP_PROXX=");
            assert!(d.contains("HTTP_PROXY is unset"), "{d}");
            if distribution == "k3s" {
                let d = edited(
                    &plan,
                    node,
                    root,
                    "var/lib/rancher/k3s/server/manifests/edgenet-service-range.yaml",
                    "range-global: ",
                    "range-global: 10.9.9.9-10.9.9.10 #",
                );
                assert!(d.contains("range-global"), "{d}");
            } else {
                let calico = "etc/kubernetes/edgenet/addons/calico-installation.yaml";
                let d = edited(&plan, node, root, calico, "mtu: 1450", "mtu: 1400");
                assert!(d.contains("mtu is 1400") && d.contains("1450"), "{d}");
                let d = edited(&plan, node, root, calico, "cidr: ", "cidr: 10.99.0.0/16 #");
                assert!(d.contains("ipPools[0].cidr"), "{d}");
            }
            let d = edited(&plan, node, root, resolv, "nameserver", ": : {{{\n");
            assert!(!d.is_empty());

            // The Windows node's files, unparseable ones too.
            let win = plan
                .nodes
                .iter()
                .find(|n| n.kind == edgenet_core::plan::NodeKind::Windows)
                .unwrap();
            let wdir = tempfile::tempdir().unwrap();
            write_all(&plan, win, None, wdir.path());
            assert_eq!(differences(&plan, win, None, wdir.path()), Some(vec![]));
            let wconfig = if distribution == "k3s" {
                "C/etc/rancher/k3s/config.yaml"
            } else {
                "C/etc/kubernetes/edgenet/kubeadm.yaml"
            };
            std::fs::write(wdir.path().join(wconfig), "key: [unclosed\n  - {\n").unwrap();
            let c = check(&plan, win, None, wdir.path());
            assert_eq!(c.status, crate::Status::Fail);
            assert!(
                c.detail.contains("does not parse") && !c.detail.contains('\n'),
                "{}",
                c.detail
            );
        }
    }

    #[test]
    fn two_edited_files_on_an_init_node_are_both_named() {
        let plan = plan_of("k8s", true);
        let node = &plan.nodes[0];
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_all(&plan, node, None, root);
        for (rel, from, to) in [
            (
                "etc/kubernetes/edgenet/addons/calico-installation.yaml",
                "mtu: 1450",
                "mtu: 9000",
            ),
            (
                "etc/kubernetes/edgenet/addons/service-range.yaml",
                "range-global: ",
                "range-global: 10.0.0.1-10.0.0.9 #",
            ),
        ] {
            let path = root.join(rel);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert!(text.contains(from), "{rel} has no {from:?}:\n{text}");
            std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        }
        let c = check(&plan, node, None, root);
        assert_eq!(c.status, crate::Status::Fail, "{c:?}");
        assert!(c.detail.contains("mtu is 9000"), "{}", c.detail);
        assert!(c.detail.contains("range-global"), "{}", c.detail);
        assert!(!c.detail.contains("kubeadm.yaml"), "{}", c.detail);
    }

    #[test]
    fn a_unit_pointing_at_a_namespace_that_is_gone_fails() {
        let plan = plan_of("k3s", false);
        let node = &plan.nodes[0];
        let ns = NodeNamespace {
            netns: format!("f9gone{}", std::process::id()),
            resolv_conf: "/var/lib/edgenet/nodes/x/resolv.conf".into(),
            proxy_env: "/var/lib/edgenet/nodes/x/proxy.env".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        write_all(&plan, node, Some(&ns), dir.path());
        let c = check(&plan, node, Some(&ns), dir.path());
        assert_eq!(c.status, crate::Status::Fail, "{c:?}");
        assert!(
            c.detail
                .contains(&format!("/run/netns/{} does not exist", ns.netns)),
            "{}",
            c.detail
        );
    }
}

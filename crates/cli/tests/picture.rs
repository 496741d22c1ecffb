//! `--output svg|dot|html` as a user runs it: the plan's picture, the live kernel's picture
//! with real drift (a changed MTU, a deleted node), and the lab page of a real lab, parsed
//! with an XML parser and rendered by a headless Chromium. Node names and addresses are
//! taken from edgenet's JSON output or state, never from the picture code.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::is_root;

fn edgenet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgenet"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_LAYOUT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn parse(text: &str) -> roxmltree::Document<'_> {
    // Graphviz's SVG carries a DOCTYPE; its external DTD is never fetched.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(text, options)
        .unwrap_or_else(|e| panic!("not well-formed: {e}\n{}", &text[..text.len().min(2000)]))
}

/// The text lines (`<text>` elements) inside the element with this id.
fn texts_in(doc: &roxmltree::Document, id: &str) -> Vec<String> {
    let el = doc
        .descendants()
        .find(|n| n.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no element with id {id}"));
    el.descendants()
        .filter(|n| n.tag_name().name() == "text")
        .map(|t| {
            t.descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect::<String>()
                .trim()
                .to_string()
        })
        .collect()
}

/// (machine, node name, node address with prefix) of a JSON plan.
fn nodes_of(plan: &Value) -> Vec<(String, String, String)> {
    plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                plan["machine"]["name"].as_str().unwrap().to_string(),
                n["name"].as_str().unwrap().to_string(),
                n["address"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn node_id(machine: &str, node: &str) -> String {
    format!("m-{machine}-node-{node}")
}

fn assert_nodes_drawn(doc: &roxmltree::Document, nodes: &[(String, String, String)]) {
    assert!(!nodes.is_empty());
    for (machine, name, address) in nodes {
        let lines = texts_in(doc, &node_id(machine, name));
        assert!(lines.iter().any(|l| l == name), "{name} in {lines:?}");
        assert!(
            lines.iter().any(|l| l.contains(address.as_str())),
            "{address} in {lines:?}"
        );
    }
}

fn layouts() -> Vec<&'static str> {
    let mut l = vec!["builtin"];
    if Command::new("dot").arg("-V").output().is_ok() {
        l.push("graphviz");
    } else {
        eprintln!("skipped (Graphviz layout): dot is not installed");
    }
    l
}

const PLAN_ARGS: &[&str] = &["plan", "--offline-check", "--machine-name", "edge01"];

#[test]
fn plan_pictures_hold_every_node_of_the_plan() {
    let json = edgenet(&[PLAN_ARGS, &["--output", "json"]].concat(), &[]);
    let plan: Value = serde_json::from_slice(&json.stdout).unwrap();
    let nodes = nodes_of(&plan);
    for layout in layouts() {
        let out = edgenet(
            &[PLAN_ARGS, &["--output", "svg"]].concat(),
            &[("EDGENET_LAYOUT", layout)],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let doc = parse(&text);
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{layout}");
        assert_nodes_drawn(&doc, &nodes);
        let switch = texts_in(&doc, "m-edge01-switch").join(" ");
        assert!(
            switch.contains(plan["switch"]["subnet"].as_str().unwrap())
                && switch.contains(plan["switch"]["host_address"].as_str().unwrap()),
            "{layout}: {switch}"
        );
    }
    let dot = edgenet(&[PLAN_ARGS, &["--output", "dot"]].concat(), &[]);
    assert!(dot.status.success());
    assert!(String::from_utf8_lossy(&dot.stdout).starts_with("digraph edgenet {"));
}

#[test]
fn a_picture_format_where_there_is_no_picture_is_refused() {
    for (args, format) in [
        (&["check"][..], "svg"),
        (&["plan", "--offline-check"][..], "html"),
        (&["config", "new"][..], "dot"),
    ] {
        // Before the command: `config new` takes no --output of its own.
        let out = edgenet(&[&["--output", format][..], args].concat(), &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?} {format}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("--output {format} is not available")),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = edgenet(
        &[PLAN_ARGS, &["--output", "svg"]].concat(),
        &[("EDGENET_LAYOUT", "fancy")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EDGENET_LAYOUT is \"fancy\""));
}

#[test]
fn without_graphviz_the_builtin_layout_draws_and_asking_for_graphviz_fails_clearly() {
    let no_dot = [("PATH", "/nonexistent")];
    let out = edgenet(&[PLAN_ARGS, &["--output", "svg"]].concat(), &no_dot);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("Generated by graphviz"));
    let doc = parse(&text);
    assert!(!texts_in(&doc, "m-edge01-uplink").is_empty());
    let out = edgenet(
        &[PLAN_ARGS, &["--output", "svg"]].concat(),
        &[no_dot[0], ("EDGENET_LAYOUT", "graphviz")],
    );
    // Nothing was changed: the environment lacks a program, exit 2 (not 3, "host").
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("install Debian's graphviz"), "{err}");
    assert!(out.stdout.is_empty());
}

/// The README shows docs/plan-default.svg: the built-in default drawn by the built-in layout.
/// Regenerate with `EDGENET_LAYOUT=builtin edgenet plan --offline-check --machine-name edge01
/// --output svg > docs/plan-default.svg`.
#[test]
fn the_readme_picture_is_the_current_default_plan() {
    let out = edgenet(
        &[PLAN_ARGS, &["--output", "svg"]].concat(),
        &[("EDGENET_LAYOUT", "builtin")],
    );
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plan-default.svg");
    let committed = std::fs::read_to_string(&docs).unwrap();
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "docs/plan-default.svg is out of date; regenerate it (see this test's comment)"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    assert!(readme.contains("docs/plan-default.svg"));
}

#[test]
fn status_picture_draws_real_drift_where_it_is() {
    let Some(m) = support::machine("pic") else {
        return;
    };
    let cfg = m.write_config(
        "c.json",
        &serde_json::json!({"Machines": [{"LinuxNode": {}, "WindowsNode": {}}]}),
    );
    m.deploy(Some(&cfg));
    let report: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
    let nodes = nodes_of(&report["plan"]);
    let machine = nodes[0].0.clone();
    for layout in layouts() {
        let out = m.edgenet_env(
            &["status", "--output", "svg"],
            &[("EDGENET_LAYOUT", layout)],
        );
        assert!(out.status.success(), "no drift yet");
        let text = String::from_utf8(out.stdout).unwrap();
        let doc = parse(&text);
        assert_nodes_drawn(&doc, &nodes);
        let mut ids: Vec<String> = nodes.iter().map(|n| node_id(&machine, &n.1)).collect();
        ids.extend(["uplink", "switch"].map(|e| format!("m-{machine}-{e}")));
        for id in ids {
            let lines = texts_in(&doc, &id);
            assert!(
                !lines.iter().any(|l| l.contains("DRIFT")),
                "{layout}: no drift drawn on {id}: {lines:?}"
            );
        }
    }

    // Break it for real: the Linux node's MTU changes, the Windows node's namespace goes.
    let netns = |i: usize| report["nodes"][i]["netns"].as_str().unwrap().to_string();
    support::sh(&format!("ip -n {} link set eth0 mtu 1400", netns(0)));
    support::sh(&format!("ip netns del {}", netns(1)));
    for layout in layouts() {
        let out = m.edgenet_env(
            &["status", "--output", "svg"],
            &[("EDGENET_LAYOUT", layout)],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "drift exits 1 as the text report does"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let doc = parse(&text);
        let linux = texts_in(&doc, &node_id(&machine, &nodes[0].1));
        assert!(
            linux
                .iter()
                .any(|l| l.starts_with("DRIFT:") && l.contains("MTU 1400")),
            "{layout}: {linux:?}"
        );
        let windows = texts_in(&doc, &node_id(&machine, &nodes[1].1)).join(" ");
        assert!(
            windows.contains("DRIFT:") && windows.contains("missing"),
            "{layout}: {windows}"
        );
        let switch = texts_in(&doc, &format!("m-{machine}-switch")).join(" ");
        assert!(!switch.contains("DRIFT"), "{layout}: {switch}");
    }
}

/// `edgenet lab …` with a lab of the test's own, brought down on drop.
struct CliLab {
    dir: tempfile::TempDir,
    name: String,
}

impl CliLab {
    fn up(tag: &str) -> Option<CliLab> {
        if !is_root() {
            eprintln!("skipped: needs root to build a lab");
            return None;
        }
        let lab = CliLab {
            dir: tempfile::tempdir().unwrap(),
            name: format!("t{tag}{}", std::process::id()),
        };
        let up = lab.run(&["lab", "up", "--no-status"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        Some(lab)
    }

    fn run(&self, args: &[&str]) -> Output {
        edgenet(
            &[
                args,
                &[
                    "--name",
                    &self.name,
                    "--lab-dir",
                    self.dir.path().to_str().unwrap(),
                ],
            ]
            .concat(),
            &[],
        )
    }

    /// (machine, node, address) of every lab machine's applied plan, from its state.
    fn nodes(&self) -> Vec<(String, String, String)> {
        let machines = self.dir.path().join(&self.name).join("machines");
        let mut out = Vec::new();
        for e in std::fs::read_dir(machines).unwrap().flatten() {
            let state: Value =
                serde_json::from_slice(&std::fs::read(e.path().join("state/state.json")).unwrap())
                    .unwrap();
            let machine = e.file_name().to_string_lossy().to_string();
            for (_, name, address) in nodes_of(&state["applied_plan"]) {
                out.push((machine.clone(), name, address));
            }
        }
        out
    }

    fn deployment_id(&self, machine: &str) -> String {
        let path = self
            .dir
            .path()
            .join(&self.name)
            .join(format!("machines/{machine}/state/state.json"));
        let state: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        state["deployment_id"].as_str().unwrap().to_string()
    }

    fn page(&self) -> (String, PathBuf) {
        let out = self.run(&["lab", "status", "--output", "html"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let path = self.dir.path().join("page.html");
        std::fs::write(&path, &text).unwrap();
        (text, path)
    }
}

impl Drop for CliLab {
    fn drop(&mut self) {
        let _ = self.run(&["lab", "down"]);
    }
}

#[test]
fn the_lab_page_holds_the_picture_and_the_matrix() {
    let Some(lab) = CliLab::up("pg") else {
        return;
    };
    let nodes = lab.nodes();
    let (page, _) = lab.page();
    let doc = parse(&page);
    assert_eq!(doc.root_element().tag_name().name(), "html");
    assert_nodes_drawn(&doc, &nodes);
    let matrix: Value =
        serde_json::from_slice(&lab.run(&["lab", "status", "--output", "json"]).stdout).unwrap();
    let rows = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "tr" && n.attribute("id").is_some())
        .count();
    assert_eq!(rows, matrix["cells"].as_array().unwrap().len());
    for n in doc.descendants().filter(|n| n.is_element()) {
        for a in n.attributes() {
            if a.name() == "src" || a.name() == "href" {
                assert!(a.value().starts_with('#'), "fetches nothing: {}", a.value());
            }
        }
    }
    // (Graphviz wraps a node with a tooltip in an `<a>` without a target: not a link.)
    assert!(
        !doc.descendants()
            .any(|n| n.tag_name().name() == "a" && n.attributes().any(|a| a.name() == "href")),
        "no failed cell, no link"
    );

    // The node loses its default route for real: its internet cells fail, and each failed
    // row links to the node in the picture, which says FAIL.
    let (machine, node, _) = &nodes[0];
    support::sh(&format!(
        "ip -n {}-{} route del default",
        node,
        lab.deployment_id(machine)
    ));
    let out = lab.run(&["lab", "status", "--output", "html"]);
    assert_eq!(out.status.code(), Some(1), "failed cells exit 1");
    let page = String::from_utf8(out.stdout).unwrap();
    let doc = parse(&page);
    let failed: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "tr" && n.attribute("class") == Some("fail"))
        .collect();
    assert!(!failed.is_empty());
    for row in failed {
        let link = row
            .descendants()
            .find(|n| n.tag_name().name() == "a")
            .expect("a failed cell links to the picture");
        let target = &link.attribute("href").unwrap()[1..];
        assert_eq!(target, node_id(machine, node));
        assert!(texts_in(&doc, target)
            .iter()
            .any(|l| l.starts_with("FAIL:")));
    }
}

/// Chromium's headless mode, isolated: a fresh profile, no network services of its own.
fn chromium(args: &[&str], profile: &Path) -> Output {
    Command::new("timeout")
        .arg("180")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn chromium_renders_the_lab_page_with_every_node() {
    if Command::new("chromium").arg("--version").output().is_err() {
        eprintln!("skipped: chromium is not installed (scripts/deps.sh installs it when it can)");
        return;
    }
    let Some(lab) = CliLab::up("chr") else {
        return;
    };
    let nodes = lab.nodes();
    let (_, path) = lab.page();
    let url = format!("file://{}", path.display());
    let work = tempfile::tempdir().unwrap();

    let dom = chromium(&["--dump-dom", &url], &work.path().join("profile-dom"));
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8(dom.stdout).unwrap();
    let html = scraper::Html::parse_document(&dom);
    let text: String = html.root_element().text().collect();
    for (machine, name, address) in &nodes {
        let selector =
            scraper::Selector::parse(&format!("svg [id=\"{}\"]", node_id(machine, name))).unwrap();
        let el = html
            .select(&selector)
            .next()
            .unwrap_or_else(|| panic!("Chromium's DOM has the node {name} in the picture"));
        let inside: String = el.text().collect();
        assert!(
            inside.contains(name.as_str()) && inside.contains(address.as_str()),
            "{inside}"
        );
        assert!(text.contains(name.as_str()) && text.contains(address.as_str()));
    }

    // The screenshot holds a picture: a PNG of the window's size, far larger than the same
    // window showing an empty page.
    let shot = |page: &str, name: &str| {
        let png = work.path().join(format!("{name}.png"));
        let out = chromium(
            &[&format!("--screenshot={}", png.display()), page],
            &work.path().join(format!("profile-{name}")),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(png).unwrap()
    };
    let blank_page = work.path().join("blank.html");
    std::fs::write(&blank_page, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank = shot(&format!("file://{}", blank_page.display()), "blank");
    let lab_png = shot(&url, "lab");
    assert_eq!(png_size(&lab_png), (1280, 1600));
    assert!(
        lab_png.len() > 4 * blank.len(),
        "the lab page's screenshot ({} bytes) shows more than an empty page's ({} bytes)",
        lab_png.len(),
        blank.len()
    );
}

/// `status` as text, JSON and SVG (each layout): all exit 1 and all name `needle` in their
/// drift; the SVG draws it on the element `at`.
fn assert_drift_everywhere(m: &support::Machine, needle: &str, at: &str) {
    let text = m.edgenet(&["status"]);
    assert_eq!(text.status.code(), Some(1), "text exits 1 on {needle}");
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    let drift_part = text.split("Drift:").nth(1).unwrap_or("");
    assert!(
        drift_part.contains(needle),
        "text names {needle:?}:\n{text}"
    );
    let json = m.edgenet(&["status", "--output", "json"]);
    assert_eq!(json.status.code(), Some(1), "json exits 1 on {needle}");
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let drift: Vec<&str> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        drift.iter().any(|d| d.contains(needle)),
        "json names {needle:?}: {drift:?}"
    );
    for layout in layouts() {
        let out = m.edgenet_env(
            &["status", "--output", "svg"],
            &[("EDGENET_LAYOUT", layout)],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{layout} svg exits 1 on {needle}"
        );
        let svg = String::from_utf8(out.stdout).unwrap();
        let doc = parse(&svg);
        let lines = texts_in(&doc, at).join(" ");
        assert!(
            lines.contains("DRIFT:") && lines.contains(needle),
            "{layout}: {needle:?} drawn on {at}: {lines}"
        );
    }
}

fn in_machine(m: &support::Machine, cmd: &str) {
    support::sh(&format!("ip netns exec {} {cmd}", m.ns));
}

/// The handle of the first rule of `chain` in edgenet's table whose text contains `needle`.
fn rule_handle(m: &support::Machine, table: &str, chain: &str, needle: &str) -> String {
    let listing = support::sh_out(&format!(
        "ip netns exec {} nft -a list chain ip {table} {chain}",
        m.ns
    ));
    listing
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.rsplit("# handle ").next())
        .unwrap_or_else(|| panic!("no rule with {needle} in {listing}"))
        .trim()
        .to_string()
}

#[test]
fn status_text_json_and_svg_report_the_same_drift_and_exit_1() {
    let Some(m) = support::machine("f12dr") else {
        return;
    };
    let cfg = m.write_config(
        "c.json",
        &serde_json::json!({
            "Machines": [{"LinuxNode": {}}],
            "Edgenet": {"PortForwards": [{"Protocol": "tcp", "HostPort": 8080, "NodePort": 30080}]}
        }),
    );
    m.deploy(Some(&cfg));
    let report: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(report["drift"].as_array().unwrap().len(), 0);
    let machine = report["plan"]["machine"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let node = report["nodes"][0]["name"].as_str().unwrap().to_string();
    let netns = report["nodes"][0]["netns"].as_str().unwrap().to_string();
    let id = report["deployment_id"].as_str().unwrap().to_string();
    let table = format!("edgenet_{id}");
    let node_el = node_id(&machine, &node);
    let live_mac = report["nodes"][0]["mac"].as_str().unwrap().to_string();
    // The picture shows the MAC deploy generated, not "generated at deploy".
    let svg = m.ok(&["status", "--output", "svg"]);
    let lines = texts_in(&parse(&svg), &node_el).join(" ");
    assert!(
        lines.contains(&format!("MAC {live_mac}")) && !lines.contains("MAC generated"),
        "{lines}"
    );

    support::sh(&format!("ip -n {netns} link set eth0 mtu 1400"));
    assert_drift_everywhere(&m, "MTU 1400", &node_el);

    support::sh(&format!(
        "ip -n {netns} link set eth0 address 02:12:34:56:78:9a"
    ));
    assert_drift_everywhere(&m, "MAC 02:12:34:56:78:9a", &node_el);
    // The plan's line keeps the MAC deploy gave the node (from the state), the live one
    // shows beside it.
    let out = m.edgenet(&["status", "--output", "svg"]);
    let lines = texts_in(&parse(std::str::from_utf8(&out.stdout).unwrap()), &node_el);
    assert!(
        lines.contains(&format!("MAC {live_mac} (generated at deploy)"))
            && lines.contains(&"live MAC 02:12:34:56:78:9a".to_string()),
        "{lines:?}"
    );

    // The host end of the node's veth: the switch's only port whose name carries the id.
    let links = m.ip_json("link show");
    let veth = links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .find(|n| n.starts_with(&format!("en{id}")))
        .expect("the host-side veth")
        .to_string();
    support::sh(&format!("ip -n {} link set {veth} mtu 1300", m.ns));
    assert_drift_everywhere(&m, "MTU 1300", &node_el);

    let handle = rule_handle(&m, &table, "prerouting", "dport 8080");
    in_machine(
        &m,
        &format!("nft delete rule ip {table} prerouting handle {handle}"),
    );
    assert_drift_everywhere(
        &m,
        "port forward tcp/8080",
        &format!("m-{machine}-fwd-{node}"),
    );

    in_machine(&m, "sysctl -qw net.ipv4.ip_forward=0");
    assert_drift_everywhere(&m, "ip_forward is 0", &format!("m-{machine}-uplink"));
}

#[test]
fn an_offline_switch_without_its_table_is_not_drawn_closed_and_its_forwards_are_broken() {
    let Some(m) = support::machine("f12of") else {
        return;
    };
    let cfg = m.write_config(
        "c.json",
        &serde_json::json!({
            "Network": {"InternetDisabled": true},
            "Machines": [{"LinuxNode": {}}],
            "Edgenet": {"PortForwards": [{"Protocol": "tcp", "HostPort": 8080, "NodePort": 30080}]}
        }),
    );
    m.deploy(Some(&cfg));
    let report: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
    let machine = report["plan"]["machine"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let node = report["nodes"][0]["name"].as_str().unwrap().to_string();
    let id = report["deployment_id"].as_str().unwrap().to_string();
    let arrow = format!("m-{machine}-fwd-{node}-arrow");
    let uplink = format!("m-{machine}-uplink");
    for layout in layouts() {
        let svg = m.edgenet_env(
            &["status", "--output", "svg"],
            &[("EDGENET_LAYOUT", layout)],
        );
        assert!(svg.status.success());
        let doc = parse(std::str::from_utf8(&svg.stdout).unwrap());
        assert!(texts_in(&doc, &uplink).join(" ").contains("CLOSED"));
        assert!(!texts_in(&doc, &arrow).join(" ").contains("DRIFT"));
    }

    in_machine(&m, &format!("nft delete table ip edgenet_{id}"));
    assert_drift_everywhere(
        &m,
        "port forward tcp/8080",
        &format!("m-{machine}-fwd-{node}"),
    );
    for layout in layouts() {
        let svg = m.edgenet_env(
            &["status", "--output", "svg"],
            &[("EDGENET_LAYOUT", layout)],
        );
        assert_eq!(svg.status.code(), Some(1));
        let doc = parse(std::str::from_utf8(&svg.stdout).unwrap());
        let up = texts_in(&doc, &uplink).join(" ");
        assert!(
            !up.contains("CLOSED") && !up.contains("nothing leaves the switch"),
            "{layout}: {up}"
        );
        assert!(up.contains("DRIFT:"), "{layout}: {up}");
        let arrow_text = texts_in(&doc, &arrow).join(" ");
        assert!(arrow_text.contains("DRIFT"), "{layout}: arrow {arrow_text}");
    }
}

#[test]
fn lab_status_reports_a_node_whose_namespace_is_gone() {
    let Some(lab) = CliLab::up("f12ns") else {
        return;
    };
    let nodes = lab.nodes();
    let (machine, node, _) = &nodes[0];
    support::sh(&format!(
        "ip netns del {}-{}",
        node,
        lab.deployment_id(machine)
    ));
    let json = lab.run(&["lab", "status", "--output", "json"]);
    assert_eq!(
        json.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let matrix: Value = serde_json::from_slice(&json.stdout).unwrap();
    let cells = matrix["cells"].as_array().unwrap();
    let from_node: Vec<&Value> = cells
        .iter()
        .filter(|c| c["from"].as_str() == Some(node.as_str()))
        .collect();
    assert!(!from_node.is_empty());
    assert!(from_node.iter().all(|c| c["ok"] == false), "{from_node:?}");
    let text = lab.run(&["lab", "status"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stdout).contains(node.as_str()));
    for format in ["svg", "html"] {
        let out = lab.run(&["lab", "status", "--output", format]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let page = String::from_utf8(out.stdout).unwrap();
        let doc = parse(&page);
        assert_nodes_drawn(&doc, &nodes);
        let lines = texts_in(&doc, &node_id(machine, node)).join(" ");
        assert!(
            lines.contains("DOWN:") && lines.contains("namespace is gone"),
            "{format}: {lines}"
        );
    }
}

#[test]
fn an_invalid_lab_name_is_refused_before_anything_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("labs");
    for cmd in ["up", "status", "down"] {
        let out = edgenet(
            &[
                "lab",
                cmd,
                "--name",
                "b12<&>",
                "--lab-dir",
                lab_dir.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "lab {cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--name") && err.contains("a-z"), "{err}");
        assert!(
            !err.contains("lab down --name b12"),
            "no hint with the bad name: {err}"
        );
        assert!(!lab_dir.exists(), "lab {cmd} made nothing");
    }
}

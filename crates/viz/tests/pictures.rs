//! The pictures, checked by parsing them: every SVG and page is well-formed XML and holds
//! every node's name and address in its text; problems sit on the element they are about,
//! with a text label; the built-in layout keeps boxes apart at 1 and at 50 machines; Graphviz
//! (when installed) draws the same DOT with the same ids.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use edgenet_core::config::load;
use edgenet_core::plan::{self, Plan};
use edgenet_core::validate::Context;
use edgenet_lab::{Cell, Matrix, Reach, Row};
use edgenet_viz::layout::{self, CHAR_W};
use edgenet_viz::model::{node_id, Location, Problem};
use edgenet_viz::{dot, graphviz, html, svg, Topology};
use serde_json::json;

fn parse(text: &str) -> Result<roxmltree::Document<'_>, roxmltree::Error> {
    // Graphviz's SVG has a DOCTYPE; its external DTD is not fetched.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(text, options)
}

fn plan_of(config: serde_json::Value, machine: Option<usize>, name: &str) -> Plan {
    let loaded = load(config.to_string().as_bytes()).unwrap();
    let mut ctx = Context::offline("test", "testhost");
    ctx.machine = machine;
    ctx.machine_name = Some(name.to_string());
    plan::build(&loaded.config, &ctx).unwrap()
}

fn rich_plan() -> Plan {
    plan_of(
        json!({
            "DeploymentType": "SingleMachineCluster",
            "Init": {"ServiceIPRangeSize": 5},
            "Network": {
                "DnsServers": ["10.0.0.53"],
                "Proxy": {"Http": "http://alice:s3cret@proxy.corp:3128", "Https": "http://alice:s3cret@proxy.corp:3128"}
            },
            "Machines": [{"LinuxNode": {"MacAddress": "02:00:00:00:00:02"}, "WindowsNode": {}}],
            "Edgenet": {"PortForwards": [{"Protocol": "tcp", "HostPort": 8080, "NodePort": 30080}]}
        }),
        None,
        "edge01",
    )
}

/// A scalable cluster of `n` machines with a Linux and a Windows node each.
fn scalable_plans(n: usize) -> Vec<Plan> {
    let machines: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "NetworkConnection": {"AdapterName": "eth0"},
                "LinuxNode": {"Ip4Address": format!("10.1.{}.{}", i / 100, 10 + i % 100)},
                "WindowsNode": {"Ip4Address": format!("10.1.{}.{}", 2 + i / 100, 10 + i % 100)}
            })
        })
        .collect();
    let config = json!({
        "DeploymentType": "ScalableCluster",
        "Init": {"ServiceIPRangeStart": "10.1.9.1", "ServiceIPRangeSize": 10},
        "Network": {
            "ControlPlaneEndpointIp": "10.1.9.200",
            "Ip4GatewayAddress": "10.1.0.1",
            "Ip4PrefixLength": 20,
            "DnsServers": ["10.1.0.1"]
        },
        "Machines": machines
    });
    (0..n)
        .map(|i| plan_of(config.clone(), Some(i), &format!("m{}", i + 1)))
        .collect()
}

/// Every `<text>` element's whole text, by the id of the nearest enclosing element with one.
fn texts(doc: &roxmltree::Document) -> Vec<(String, String)> {
    doc.descendants()
        .filter(|n| n.tag_name().name() == "text")
        .map(|t| {
            let owner = t
                .ancestors()
                .skip(1)
                .find_map(|a| a.attribute("id"))
                .unwrap_or("")
                .to_string();
            let text: String = t
                .descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect();
            (owner, text.trim().to_string())
        })
        .collect()
}

/// The text lines inside the element with this id.
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
        })
        .map(|t| t.trim().to_string())
        .collect()
}

fn assert_holds_nodes(svg: &str, plans: &[Plan], machine_names: &[String]) {
    let doc = parse(svg).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let all: Vec<String> = texts(&doc).into_iter().map(|(_, t)| t).collect();
    for (plan, machine) in plans.iter().zip(machine_names) {
        for n in &plan.nodes {
            let inside = texts_in(&doc, &node_id(machine, &n.name));
            assert!(
                inside.iter().any(|t| t == &n.name),
                "{} in {inside:?}",
                n.name
            );
            let address = n.address.to_string();
            assert!(
                inside.iter().any(|t| t.contains(&address)),
                "{address} in {inside:?}"
            );
            assert!(all.iter().any(|t| t == &n.name));
        }
    }
}

fn dot_or_skip(dot_text: &str) -> Option<String> {
    match graphviz::run_dot(dot_text) {
        Ok(svg) => Some(svg),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: Graphviz's dot is not installed (scripts/deps.sh installs it)");
            None
        }
        Err(e) => panic!("dot failed: {e}\n{dot_text}"),
    }
}

#[test]
fn the_plan_picture_holds_every_node_and_setting_with_either_layout() {
    let plan = rich_plan();
    let topo = edgenet_viz::from_plan(&plan);
    let mut svgs = vec![("builtin", svg::builtin_svg(&topo))];
    svgs.extend(dot_or_skip(&dot::to_dot(&topo)).map(|s| ("graphviz", s)));
    for (layout, svg) in svgs {
        assert_holds_nodes(&svg, std::slice::from_ref(&plan), &["edge01".into()]);
        let doc = parse(&svg).unwrap();
        let all: Vec<String> = texts(&doc).into_iter().map(|(_, t)| t).collect();
        let has = |needle: &str| all.iter().any(|t| t.contains(needle));
        for needle in [
            "aksedgesw-int",
            "subnet 192.168.0.0/24",
            "host .1 192.168.0.1/24",
            "MAC 02:00:00:00:00:02",
            "MTU 1500",
            "linux · control-plane",
            "windows · worker",
            "control plane 192.168.0.2",
            "service IPs 192.168.0.4 – 192.168.0.8 (5)",
            "DNS 10.0.0.53",
            "proxy http://alice:***@proxy.corp:3128",
            "host :8080/tcp",
            "outbound NAT",
        ] {
            assert!(has(needle), "{layout}: {needle:?} in {all:#?}");
        }
        assert!(
            !svg.contains("s3cret"),
            "{layout}: the proxy password is in the picture"
        );
        // The node's forwards are one box, with an arrow into the node.
        let port = texts_in(&doc, "m-edge01-fwd-edge01-ledge");
        assert!(
            port.iter().any(|t| t.contains("host :8080/tcp → :30080")),
            "{port:?}"
        );
        assert!(
            doc.descendants()
                .any(|n| n.attribute("id") == Some("m-edge01-fwd-edge01-ledge-arrow")),
            "{layout}: the arrow"
        );
    }
}

#[test]
fn an_offline_plan_is_drawn_with_a_closed_uplink() {
    let plan = plan_of(
        json!({"Network": {"InternetDisabled": true}, "Machines": [{"LinuxNode": {}}]}),
        None,
        "edge01",
    );
    let topo = edgenet_viz::from_plan(&plan);
    let svg = svg::builtin_svg(&topo);
    let doc = parse(&svg).unwrap();
    let uplink = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("m-edge01-uplink"))
        .unwrap();
    assert!(uplink.attribute("class").unwrap().contains("closed"));
    let lines = texts_in(&doc, "m-edge01-uplink");
    assert!(lines.iter().any(|l| l.contains("CLOSED")), "{lines:?}");
    let rect = uplink
        .children()
        .find(|c| c.tag_name().name() == "rect")
        .unwrap();
    assert!(rect.attribute("stroke-dasharray").is_some());
    if let Some(gv) = dot_or_skip(&dot::to_dot(&topo)) {
        let doc = parse(&gv).unwrap();
        assert!(texts_in(&doc, "m-edge01-uplink")
            .iter()
            .any(|l| l.contains("CLOSED")));
    }
}

fn status_report(plan: &Plan) -> edgenet_deploy::StatusReport {
    let live = |n: &edgenet_core::plan::NodePlan, present: bool, mtu: u32| {
        edgenet_deploy::node::NodeLive {
            name: n.name.clone(),
            netns: format!("{}-abc123", n.name),
            present,
            up: present,
            addresses: if present {
                vec![n.address.to_string()]
            } else {
                vec![]
            },
            mac: present.then(|| "02:00:00:00:00:02".to_string()),
            mtu: present.then_some(mtu),
            gateway: present.then(|| n.gateway.to_string()),
            on_switch: present,
            lo_down: false,
            vm: None,
        }
    };
    let windows = &plan.nodes[1];
    edgenet_deploy::StatusReport {
        deployed: true,
        state_dir: "/var/lib/edgenet".into(),
        deployment_id: Some("abc123".into()),
        phase: None,
        plan: Some(plan.clone()),
        switch: None,
        firewall_table: Some("ip edgenet_abc123".into()),
        firewall_present: true,
        firewall_wanted: true,
        firewall_foreign: false,
        bridge_table: Some("bridge edgenet_abc123".into()),
        bridge_table_present: true,
        bridge_table_foreign: false,
        ip_forward: Some("1".into()),
        nodes: vec![live(&plan.nodes[0], true, 1400), live(windows, false, 0)],
        generated_macs: Default::default(),
        drift: vec![
            format!("node {} has MTU 1400, the plan says 1500", plan.nodes[0].name),
            format!("node {} ({}-abc123) is missing", windows.name, windows.name),
            "a foreign firewall drops forwarded traffic: table ip filter, chain FORWARD policy drop"
                .into(),
        ],
        notices: Vec::new(),
    }
}

#[test]
fn drift_is_drawn_on_the_element_it_is_about_with_a_text_label() {
    let plan = rich_plan();
    let topo = edgenet_viz::from_status(&status_report(&plan));
    for svg in [
        Some(svg::builtin_svg(&topo)),
        dot_or_skip(&dot::to_dot(&topo)),
    ]
    .into_iter()
    .flatten()
    {
        let doc = parse(&svg).unwrap();
        let ledge = texts_in(&doc, "m-edge01-node-edge01-ledge");
        assert!(
            ledge
                .iter()
                .any(|l| l.starts_with("DRIFT:") && l.contains("MTU 1400")),
            "changed MTU on the node: {ledge:?}"
        );
        let wedge = texts_in(&doc, "m-edge01-node-edge01-wedge").join(" ");
        assert!(
            wedge.contains("DRIFT:") && wedge.contains("missing"),
            "missing node: {wedge}"
        );
        let uplink = texts_in(&doc, "m-edge01-uplink").join(" ");
        assert!(
            uplink.contains("DRIFT:") && uplink.contains("foreign firewall"),
            "foreign firewall on the uplink: {uplink}"
        );
        let switch = texts_in(&doc, "m-edge01-switch").join(" ");
        assert!(!switch.contains("DRIFT"), "nothing drifted there: {switch}");
    }
    // A drift message of a kind the picture does not know yet still shows, on the machine.
    let mut report = status_report(&plan);
    report.drift = vec!["something new happened".into()];
    report.nodes[1] = report.nodes[0].clone();
    report.nodes[0].mtu = Some(1500);
    let topo = edgenet_viz::from_status(&report);
    assert_eq!(
        topo.problems
            .iter()
            .map(|p| (&p.at, p.text.as_str()))
            .collect::<Vec<_>>(),
        vec![(
            &Location::Machine("edge01".into()),
            "something new happened"
        )]
    );
}

fn lab_machines(plans: &[Plan]) -> Vec<edgenet_viz::LabMachineView> {
    plans
        .iter()
        .enumerate()
        .map(|(i, p)| edgenet_viz::LabMachineView {
            name: format!("m{}", i + 1),
            address: Ipv4Addr::new(198, 18, 0, 11 + i as u8),
            plan: Some(p.clone()),
            macs: Default::default(),
            missing_nodes: vec![],
        })
        .collect()
}

fn cell(row: Row, from: &str, to: &str, ok: bool) -> Cell {
    Cell {
        row,
        from: from.into(),
        to: to.into(),
        what: "ping".into(),
        expected: Reach::Reachable,
        actual: if ok {
            Reach::Reachable
        } else {
            Reach::Unreachable
        },
        ok,
        detail: if ok { "reply received" } else { "no reply" }.into(),
    }
}

#[test]
fn the_lab_page_is_self_contained_and_links_failed_cells_to_the_picture() {
    let plans = scalable_plans(3);
    let machines = lab_machines(&plans);
    let matrix = Matrix {
        lab: "t".into(),
        cells: vec![
            cell(Row::NodeToHost, "m1-ledge", "10.1.0.1", true),
            cell(Row::NodeToNode, "m2-wedge", "m3-ledge 10.1.0.12", false),
            cell(
                Row::LanToNode,
                "LAN 198.18.0.254",
                "m3-ledge 10.1.0.12",
                false,
            ),
            cell(Row::MachineToInternet, "m1", "www.edgenet.test", false),
        ],
        notes: vec![],
    };
    let topo = edgenet_viz::from_lab("t", &machines, &matrix);
    let names: Vec<String> = machines.iter().map(|m| m.name.clone()).collect();
    let mut svgs = vec![svg::builtin_svg(&topo)];
    svgs.extend(dot_or_skip(&dot::to_dot(&topo)));
    for picture in svgs {
        let page = html::lab_page(&topo, &matrix, &picture);
        let doc = parse(&page).expect("the page is well-formed");
        assert_eq!(doc.root_element().tag_name().name(), "html");
        // Self-contained: no scripts, stylesheets or images from anywhere, no remote links.
        for n in doc.descendants().filter(|n| n.is_element()) {
            assert!(
                !["script", "link", "img", "iframe", "object"].contains(&n.tag_name().name()),
                "{:?}",
                n.tag_name()
            );
            for a in n.attributes() {
                if ["src", "href"].contains(&a.name()) {
                    assert!(a.value().starts_with('#'), "{}={}", a.name(), a.value());
                }
            }
        }
        let svg_start = page.find("<svg").unwrap();
        let svg_end = page.rfind("</svg>").unwrap() + 6;
        assert_holds_nodes(&page[svg_start..svg_end], &plans, &names);
        let ids: HashMap<&str, roxmltree::Node> = doc
            .descendants()
            .filter_map(|n| Some((n.attribute("id")?, n)))
            .collect();
        let rows: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "tr" && n.attribute("id").is_some())
            .collect();
        assert_eq!(rows.len(), matrix.cells.len());
        let links: Vec<(String, String)> = rows
            .iter()
            .filter_map(|r| {
                let a = r.descendants().find(|n| n.tag_name().name() == "a")?;
                Some((
                    r.attribute("id").unwrap().to_string(),
                    a.attribute("href").unwrap()[1..].to_string(),
                ))
            })
            .collect();
        assert_eq!(
            links,
            vec![
                ("cell-1".into(), node_id("m2", "m2-wedge")),
                ("cell-2".into(), node_id("m3", "m3-ledge")),
                ("cell-3".into(), "m-m1".into()),
            ],
            "failed cells link to the picture, passed cells do not"
        );
        for (_, target) in &links {
            let el = ids.get(target.as_str()).expect("the link's target exists");
            let text: String = el
                .descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect();
            assert!(text.contains("FAIL:"), "{target} shows the failure: {text}");
        }
    }
}

fn assert_layout_sound(topo: &Topology) {
    let d = layout::layout(topo);
    let boxes: Vec<_> = d.all_boxes().collect();
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            assert!(
                !a.rect.overlaps(&b.rect),
                "{} {:?} overlaps {} {:?}",
                a.id(),
                a.rect,
                b.id(),
                b.rect
            );
        }
        for line in a.lines() {
            assert!(
                line.chars().count() as f64 * CHAR_W <= a.rect.w,
                "{line:?} does not fit in {}",
                a.id()
            );
        }
        assert!(a.rect.right() <= d.width && a.rect.bottom() <= d.height);
    }
    for (i, f) in d.frames.iter().enumerate() {
        for b in &f.boxes {
            assert!(f.rect.contains(&b.rect), "{} leaves {}", b.id(), f.id);
        }
        for g in &d.frames[i + 1..] {
            assert!(!f.rect.overlaps(&g.rect), "{} overlaps {}", f.id, g.id);
        }
        for b in &d.boxes {
            assert!(!f.rect.overlaps(&b.rect), "{} overlaps {}", b.id(), f.id);
        }
    }
}

#[test]
fn the_builtin_layout_keeps_boxes_apart_at_1_and_50_machines() {
    assert_layout_sound(&edgenet_viz::from_plan(&rich_plan()));
    for n in [1, 11, 50] {
        let plans = scalable_plans(n);
        let machines = lab_machines(&plans);
        let cells = plans
            .iter()
            .flat_map(|p| p.nodes.iter())
            .map(|node| {
                cell(
                    Row::NodeToHost,
                    &node.name,
                    "10.1.0.1",
                    node.name != "m7-wedge",
                )
            })
            .collect();
        let matrix = Matrix {
            lab: "t".into(),
            cells,
            notes: vec![],
        };
        let topo = edgenet_viz::from_lab("t", &machines, &matrix);
        assert_layout_sound(&topo);
        let svg = svg::builtin_svg(&topo);
        let names: Vec<String> = machines.iter().map(|m| m.name.clone()).collect();
        assert_holds_nodes(&svg, &plans, &names);
        // Readable: the text keeps its size and the grid stays about square, not one row.
        let d = layout::layout(&topo);
        let cols = layout::columns(n);
        assert!(
            d.frames
                .iter()
                .map(|f| f.rect.x as i64)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == cols
        );
        let ratio = d.width / d.height;
        assert!(
            n < 4 || (0.3..4.0).contains(&ratio),
            "{n} machines: {} × {}",
            d.width,
            d.height
        );
    }
}

#[test]
fn graphviz_draws_fifty_machines_with_every_node_and_id() {
    let plans = scalable_plans(50);
    let machines = lab_machines(&plans);
    let matrix = Matrix {
        lab: "t".into(),
        cells: vec![],
        notes: vec![],
    };
    let topo = edgenet_viz::from_lab("t", &machines, &matrix);
    let Some(svg) = dot_or_skip(&dot::to_dot(&topo)) else {
        return;
    };
    let names: Vec<String> = machines.iter().map(|m| m.name.clone()).collect();
    assert_holds_nodes(&svg, &plans, &names);
    let doc = parse(&svg).unwrap();
    let width: f64 = doc
        .root_element()
        .attribute("width")
        .unwrap()
        .trim_end_matches("pt")
        .parse()
        .unwrap();
    let height: f64 = doc
        .root_element()
        .attribute("height")
        .unwrap()
        .trim_end_matches("pt")
        .parse()
        .unwrap();
    assert!(
        (0.2..5.0).contains(&(width / height)),
        "rows of machines, not one long line: {width} × {height}"
    );
    // Compact: cluster-wide labels once, not once per machine.
    assert!(
        width < 3200.0 && height < 4200.0,
        "50 machines: {width} × {height} pt"
    );
    let by_id = |id: &str| {
        doc.descendants()
            .find(|n| n.attribute("id") == Some(id))
            .unwrap_or_else(|| panic!("no {id}"))
    };
    // The numbers of an element's path or polygon: (x, y) pairs.
    let points = |n: roxmltree::Node| -> Vec<(f64, f64)> {
        let shape = n
            .descendants()
            .find(|d| ["path", "polygon"].contains(&d.tag_name().name()))
            .unwrap();
        let raw = shape
            .attribute("d")
            .or_else(|| shape.attribute("points"))
            .unwrap();
        let nums: Vec<f64> = raw
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter_map(|t| t.parse().ok())
            .collect();
        nums.chunks(2).map(|c| (c[0], c[1])).collect()
    };
    // The LAN sits top left, in the first screenful of a 1400 px wide window (96 dpi).
    let lan_left = points(by_id("lan"))
        .iter()
        .map(|p| p.0)
        .fold(f64::MAX, f64::min);
    assert!(lan_left * 96.0 / 72.0 < 1000.0, "LAN at x = {lan_left} pt");
    // The LAN comes into each machine from above; the machine's heading is under its boxes,
    // so no LAN line crosses it.
    for m in &machines {
        let cluster = by_id(&format!("m-{}", m.name));
        let heading_top = cluster
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .filter_map(|t| t.attribute("y")?.parse::<f64>().ok())
            .fold(f64::MAX, f64::min);
        let uplink_bottom = points(by_id(&format!("m-{}-uplink", m.name)))
            .iter()
            .map(|p| p.1)
            .fold(f64::MIN, f64::max);
        assert!(
            heading_top > uplink_bottom,
            "{}: heading at {heading_top}, uplink down to {uplink_bottom}",
            m.name
        );
    }
}

#[test]
fn problems_at_unknown_places_are_still_drawn() {
    let mut topo = edgenet_viz::from_plan(&rich_plan());
    topo.problems.push(Problem::drift(
        Location::Node {
            machine: "elsewhere".into(),
            node: "x".into(),
        },
        "a node of another machine",
    ));
    topo.problems
        .push(Problem::drift(Location::Picture, "the whole picture"));
    let svg = svg::builtin_svg(&topo);
    let doc = parse(&svg).unwrap();
    let all: Vec<String> = texts(&doc).into_iter().map(|(_, t)| t).collect();
    assert!(all.iter().any(|t| t == "DRIFT: a node of another machine"));
    assert!(all.iter().any(|t| t == "DRIFT: the whole picture"));
}

fn with_forwards(n: u16, both_nodes: bool) -> Plan {
    use edgenet_core::config::{PortForward, Protocol};
    use edgenet_core::plan::NodeKind;
    let mut plan = rich_plan();
    plan.port_forwards = (0..n)
        .map(|i| PortForward {
            protocol: if i % 3 == 2 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            host_port: 10000 + i,
            node: if both_nodes && i % 2 == 1 {
                NodeKind::Windows
            } else {
                NodeKind::Linux
            },
            node_port: 30000 + i,
        })
        .collect();
    plan
}

fn svg_size(svg: &str) -> (f64, f64) {
    let doc = parse(svg).unwrap();
    let num = |a: &str| -> f64 {
        doc.root_element()
            .attribute(a)
            .unwrap()
            .trim_end_matches("pt")
            .parse()
            .unwrap()
    };
    (num("width"), num("height"))
}

#[test]
fn many_port_forwards_keep_the_picture_bounded() {
    let one = layout::layout(&edgenet_viz::from_plan(&with_forwards(1, false)));
    for n in [30, 200] {
        let topo = edgenet_viz::from_plan(&with_forwards(n, true));
        assert_layout_sound(&topo);
        let d = layout::layout(&topo);
        assert!(
            d.width <= one.width + 200.0 && d.height <= one.height + 300.0,
            "{n} forwards: {} × {} (one forward: {} × {})",
            d.width,
            d.height,
            one.width,
            one.height
        );
        // One box per receiving node, saying how many more there are.
        let svg = svg::builtin_svg(&topo);
        let doc = parse(&svg).unwrap();
        let ledge = texts_in(&doc, "m-edge01-fwd-edge01-ledge");
        assert!(ledge.iter().any(|l| l.contains("more")), "{ledge:?}");
        if let Some(gv) = dot_or_skip(&dot::to_dot(&topo)) {
            let (w, h) = svg_size(&gv);
            assert!(
                w < 1400.0 && h < 1600.0,
                "graphviz, {n} forwards: {w} × {h}"
            );
        }
    }
}

/// Whether two axis-parallel or general segments cross (touching ends excluded).
fn crosses(a: ((f64, f64), (f64, f64)), b: ((f64, f64), (f64, f64))) -> bool {
    let cross = |o: (f64, f64), p: (f64, f64), q: (f64, f64)| {
        (p.0 - o.0) * (q.1 - o.1) - (p.1 - o.1) * (q.0 - o.0)
    };
    let (d1, d2) = (cross(b.0, b.1, a.0), cross(b.0, b.1, a.1));
    let (d3, d4) = (cross(a.0, a.1, b.0), cross(a.0, a.1, b.1));
    let within = |p: (f64, f64), s: ((f64, f64), (f64, f64))| {
        p.0 >= s.0 .0.min(s.1 .0)
            && p.0 <= s.0 .0.max(s.1 .0)
            && p.1 >= s.0 .1.min(s.1 .1)
            && p.1 <= s.0 .1.max(s.1 .1)
    };
    ((d1 > 0.0) != (d2 > 0.0) && (d3 > 0.0) != (d4 > 0.0) && d1 != 0.0 && d2 != 0.0)
        || (d1 == 0.0 && within(a.0, b))
        || (d2 == 0.0 && within(a.1, b))
}

#[test]
fn forward_arrows_cross_no_link_and_share_no_arrowhead() {
    for both in [false, true] {
        let d = layout::layout(&edgenet_viz::from_plan(&with_forwards(3, both)));
        let wires = &d.frames[0].wires;
        let segments = |kind: layout::WireKind| -> Vec<((f64, f64), (f64, f64))> {
            wires
                .iter()
                .filter(|w| w.kind == kind)
                .flat_map(|w| {
                    w.points
                        .windows(2)
                        .map(|p| (p[0], p[1]))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let forwards = segments(layout::WireKind::Forward);
        assert!(!forwards.is_empty());
        for f in &forwards {
            for l in segments(layout::WireKind::Link) {
                assert!(!crosses(*f, l), "forward {f:?} crosses link {l:?}");
            }
        }
        let heads: Vec<(i64, i64)> = wires
            .iter()
            .filter(|w| w.kind == layout::WireKind::Forward)
            .map(|w| {
                let p = w.points.last().unwrap();
                (p.0 as i64, p.1 as i64)
            })
            .collect();
        let unique: std::collections::BTreeSet<_> = heads.iter().collect();
        assert_eq!(unique.len(), heads.len(), "arrowheads apart: {heads:?}");
    }
}

#[test]
fn a_node_several_sources_cannot_reach_is_the_one_marked() {
    let plans = scalable_plans(3);
    let machines = lab_machines(&plans);
    let matrix = Matrix {
        lab: "t".into(),
        cells: vec![
            cell(Row::NodeToNode, "m1-ledge", "m3-ledge 10.1.0.12", false),
            cell(Row::NodeToNode, "m2-ledge", "m3-ledge 10.1.0.12", false),
            cell(Row::NodeToNode, "m2-wedge", "m3-ledge 10.1.0.12", false),
            cell(Row::NodeToNode, "m1-wedge", "m2-wedge 10.1.2.11", false),
            cell(Row::NodeToNode, "m1-wedge", "m2-ledge 10.1.0.11", true),
        ],
        notes: vec![],
    };
    let topo = edgenet_viz::from_lab("t", &machines, &matrix);
    let svg = svg::builtin_svg(&topo);
    let page = html::lab_page(&topo, &matrix, &svg);
    let doc = parse(&page).unwrap();
    let m3 = texts_in(&doc, &node_id("m3", "m3-ledge")).join(" ");
    assert!(
        m3.contains("FAIL:") && m3.contains("unreachable from 3 sources"),
        "{m3}"
    );
    for healthy in [("m1", "m1-ledge"), ("m2", "m2-ledge"), ("m2", "m2-wedge")] {
        let lines = texts_in(&doc, &node_id(healthy.0, healthy.1)).join(" ");
        assert!(
            !lines.contains("FAIL"),
            "{healthy:?} is not drawn broken: {lines}"
        );
    }
    let m1w = texts_in(&doc, &node_id("m1", "m1-wedge")).join(" ");
    assert!(m1w.contains("cannot reach m2-wedge"), "{m1w}");
    // Every failed cell links to where it is drawn.
    let link = |cell: &str| -> String {
        let row = doc
            .descendants()
            .find(|n| n.attribute("id") == Some(cell))
            .unwrap();
        row.descendants()
            .find(|n| n.tag_name().name() == "a")
            .unwrap()
            .attribute("href")
            .unwrap()[1..]
            .to_string()
    };
    for c in ["cell-0", "cell-1", "cell-2"] {
        assert_eq!(link(c), node_id("m3", "m3-ledge"));
    }
    assert_eq!(link("cell-3"), node_id("m1", "m1-wedge"));
}

#[test]
fn a_box_shows_a_few_failures_and_sums_up_the_rest() {
    let plans = scalable_plans(7);
    let machines = lab_machines(&plans);
    let others: Vec<String> = plans
        .iter()
        .flat_map(|p| p.nodes.iter())
        .filter(|n| n.name != "m1-ledge")
        .take(12)
        .map(|n| format!("{} {}", n.name, n.address.addr()))
        .collect();
    let matrix = Matrix {
        lab: "t".into(),
        cells: others
            .iter()
            .map(|to| cell(Row::NodeToNode, "m1-ledge", to, false))
            .collect(),
        notes: vec![],
    };
    let topo = edgenet_viz::from_lab("t", &machines, &matrix);
    for picture in [
        Some(svg::builtin_svg(&topo)),
        dot_or_skip(&dot::to_dot(&topo)),
    ]
    .into_iter()
    .flatten()
    {
        let doc = parse(&picture).unwrap();
        let lines = texts_in(&doc, &node_id("m1", "m1-ledge"));
        let fails = lines.iter().filter(|l| l.starts_with("FAIL:")).count();
        assert_eq!(fails, 3, "{lines:?}");
        assert!(
            lines.iter().any(|l| l.contains("… and 9 more")),
            "{lines:?}"
        );
        assert!(lines.len() < 20, "the box stays small: {lines:?}");
    }
}

#[test]
fn graphviz_tooltips_are_text_and_lab_headings_name_the_machine() {
    let plans = scalable_plans(2);
    let mut machines = lab_machines(&plans);
    for m in &mut machines {
        m.name = format!("slot{}", &m.name[1..]);
        m.macs.insert(
            m.plan.as_ref().unwrap().nodes[1].name.clone(),
            "02:aa:bb:cc:dd:ee".into(),
        );
    }
    let matrix = Matrix {
        lab: "t".into(),
        cells: vec![],
        notes: vec![],
    };
    let topo = edgenet_viz::from_lab("t", &machines, &matrix);
    let mut svgs = vec![svg::builtin_svg(&topo)];
    svgs.extend(dot_or_skip(&dot::to_dot(&topo)));
    for picture in &svgs {
        let doc = parse(picture).unwrap();
        let heading = texts_in(&doc, "m-slot1").join(" ");
        assert!(heading.contains("m1 (lab slot1,"), "{heading}");
        let wedge = texts_in(&doc, &node_id("slot1", "m1-wedge")).join(" ");
        assert!(wedge.contains("MAC 02:aa:bb:cc:dd:ee"), "{wedge}");
        // Shared cluster labels are drawn once.
        let all: Vec<String> = texts(&doc).into_iter().map(|(_, t)| t).collect();
        let cp = all
            .iter()
            .filter(|t| t.starts_with("control plane 10.1.9.200"))
            .count();
        assert_eq!(cp, 1, "{all:?}");
        for n in doc.descendants() {
            if n.tag_name().name() == "title" {
                let t = n.text().unwrap_or("");
                assert!(!t.contains("<TABLE") && !t.contains("TABLE>"), "{t}");
            }
            for a in n.attributes() {
                assert!(!a.value().contains("<TABLE"), "{}={}", a.name(), a.value());
            }
        }
    }
}

#[test]
fn an_external_switch_shows_no_nat_facts_and_no_proxy_is_drawn_redacted() {
    let plan = scalable_plans(1).remove(0);
    let mut report = status_report(&plan);
    report.firewall_present = false;
    report.ip_forward = Some("0".into());
    report.drift.clear();
    report.nodes[1] = report.nodes[0].clone();
    report.nodes[1].name = plan.nodes[1].name.clone();
    let svg = svg::builtin_svg(&edgenet_viz::from_status(&report));
    let doc = parse(&svg).unwrap();
    let uplink = texts_in(&doc, "m-m1-uplink").join(" ");
    assert!(
        !uplink.contains("nftables") && !uplink.contains("ip_forward"),
        "{uplink}"
    );

    let plan = plan_of(
        json!({
            "Network": {"Proxy": {
                "Http": "http://TOKEN123@proxy.corp:3128",
                "Https": "http://proxy.corp:3128/?key=PASSWD",
                "No": "localhost,127.0.0.1,.corp.example,10.0.0.0/8,registry.internal.corp.example,http://u:SECRETNP@x"
            }},
            "Machines": [{"LinuxNode": {}}]
        }),
        None,
        "edge01",
    );
    let topo = edgenet_viz::from_plan(&plan);
    let mut svgs = vec![svg::builtin_svg(&topo)];
    svgs.extend(dot_or_skip(&dot::to_dot(&topo)));
    for picture in svgs {
        for secret in ["TOKEN123", "PASSWD", "SECRETNP"] {
            assert!(!picture.contains(secret), "{secret} is in the picture");
        }
        let doc = parse(&picture).unwrap();
        let info = texts_in(&doc, "m-edge01-info").join(" ");
        assert!(info.contains("http://***@proxy.corp:3128"), "{info}");
        assert!(info.contains("?***"), "{info}");
        assert!(info.contains("no_proxy localhost,"), "{info}");
        assert!(info.contains("registry.internal.corp.example"), "{info}");
    }
}

/// Graphviz sizes boxes with Courier's metrics (0.6 em a character): every text line of a
/// node or machine fits inside its shape.
#[test]
fn graphviz_text_stays_inside_its_box() {
    let default = plan_of(json!({"Machines": [{"LinuxNode": {}}]}), None, "edge01");
    for plan in [default, rich_plan()] {
        let Some(svg) = dot_or_skip(&dot::to_dot(&edgenet_viz::from_plan(&plan))) else {
            return;
        };
        let doc = parse(&svg).unwrap();
        for g in doc
            .descendants()
            .filter(|n| matches!(n.attribute("class"), Some("node") | Some("cluster")))
        {
            let Some(shape) = g
                .descendants()
                .find(|d| ["path", "polygon"].contains(&d.tag_name().name()))
            else {
                continue;
            };
            let raw = shape
                .attribute("d")
                .or_else(|| shape.attribute("points"))
                .unwrap();
            let xs: Vec<f64> = raw
                .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .filter_map(|t| t.parse().ok())
                .step_by(2)
                .collect();
            let right = xs.iter().cloned().fold(f64::MIN, f64::max);
            for t in g.descendants().filter(|d| d.tag_name().name() == "text") {
                let x: f64 = t.attribute("x").unwrap().parse().unwrap();
                let size: f64 = t.attribute("font-size").unwrap_or("14").parse().unwrap();
                let text: String = t
                    .descendants()
                    .filter(|d| d.is_text())
                    .filter_map(|d| d.text())
                    .collect();
                let end = x + text.chars().count() as f64 * 0.6 * size;
                assert!(
                    end <= right + 0.5,
                    "{:?} {text:?} ends at {end}, its box at {right}",
                    g.attribute("id")
                );
            }
        }
    }
}

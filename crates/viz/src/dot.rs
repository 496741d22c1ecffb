//! DOT text for Graphviz: the same blocks, labels and problems as the built-in layout, with
//! Graphviz doing the layout. Element ids are passed on (`id=`), so Graphviz's SVG has the
//! same ids as ours and the lab page links work with either.

use std::fmt::Write as _;

use crate::layout::columns;
use crate::scene::{self, Block, Flag, Scene, Style};
use crate::svg::{colours, CLOSED, FORWARD, LAN, PROBLEM};
use crate::text::xml;
use crate::Topology;

pub fn to_dot(topo: &Topology) -> String {
    write_scene(&scene::build(topo))
}

/// A quoted DOT id.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn row(content: &str) -> String {
    format!("<TR><TD ALIGN=\"LEFT\">{content}</TD></TR>")
}

fn flag_rows(flags: &[Flag]) -> String {
    flags
        .iter()
        .flat_map(|f| f.lines.iter())
        .map(|l| {
            row(&format!(
                "<FONT COLOR=\"{PROBLEM}\"><B>{}</B></FONT>",
                xml(l)
            ))
        })
        .collect()
}

fn label(title: &str, title_colour: &str, lines: &[String], flags: &[Flag]) -> String {
    let mut t =
        String::from("<<TABLE BORDER=\"0\" CELLBORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"1\">");
    t.push_str(&row(&format!(
        "<FONT COLOR=\"{title_colour}\"><B>{}</B></FONT>",
        xml(title)
    )));
    for l in lines {
        t.push_str(&row(&xml(l)));
    }
    t.push_str(&flag_rows(flags));
    t.push_str("</TABLE>>");
    t
}

fn node(out: &mut String, b: &Block) {
    let (mut fill, mut stroke, dash) = colours(b.style);
    let mut width = if b.style == Style::Closed { 2.0 } else { 1.2 };
    if b.flagged() {
        fill = "#fff4e6";
        stroke = PROBLEM;
        width = 3.0;
    }
    let title_colour = if b.style == Style::Closed {
        CLOSED
    } else {
        "#212529"
    };
    let link = b
        .flags
        .iter()
        .find_map(|f| f.anchor.as_ref())
        .map_or(String::new(), |a| format!(", URL={}", q(&format!("#{a}"))));
    // The tooltip (Graphviz's `<title>`) is the box's text; without it, Graphviz puts the
    // label's markup there.
    let _ = writeln!(
        out,
        "  {} [id={}, tooltip={}, label={}, fillcolor={}, color={}, penwidth={width}, style={}{link}];",
        q(&b.id),
        q(&b.id),
        q(&b.all_lines().join("\n")),
        label(&b.title, title_colour, &b.lines, &b.flags),
        q(fill),
        q(stroke),
        q(if dash.is_some() {
            "rounded,filled,dashed"
        } else {
            "rounded,filled"
        }),
    );
}

fn edge(out: &mut String, from: &str, to: &str, attrs: &str) {
    let _ = writeln!(out, "  {} -> {} [{attrs}];", q(from), q(to));
}

/// Graphviz sizes labels by its own metrics for the fonts it knows; Courier's match the
/// monospace font a browser then draws (0.6 em a character), so labels fit their boxes.
const FONT: &str = "Courier";

const LINK: &str = "dir=none, color=\"#495057\", penwidth=1.5";
const INVISIBLE: &str = "style=invis";

pub(crate) fn write_scene(s: &Scene) -> String {
    let mut out = String::new();
    out.push_str("digraph edgenet {\n");
    let mut title = format!("<B>{}</B>", xml(&s.title));
    for l in &s.subtitle {
        let _ = write!(title, "<BR ALIGN=\"LEFT\"/>{}", xml(l));
    }
    for l in s.flags.iter().flat_map(|f| f.lines.iter()) {
        let _ = write!(
            title,
            "<BR ALIGN=\"LEFT\"/><FONT COLOR=\"{PROBLEM}\"><B>{}</B></FONT>",
            xml(l)
        );
    }
    let _ = writeln!(
        out,
        "  graph [id=\"picture\", label=<{title}<BR ALIGN=\"LEFT\"/>>, labelloc=t, labeljust=l, fontname={f}, fontsize=13, nodesep=0.35, ranksep=0.45, newrank=true, bgcolor=\"#ffffff\"];",
        f = q(FONT)
    );
    let _ = writeln!(
        out,
        "  node [shape=box, fontname={f}, fontsize=11, margin=\"0.12,0.06\"];\n  edge [fontname={f}, fontsize=10, arrowsize=0.7];",
        f = q(FONT)
    );

    if let Some(inet) = &s.internet {
        node(&mut out, inet);
    }
    let lan_attrs = format!("dir=none, color={}, penwidth=2.5", q(LAN));
    if let Some(lan) = &s.lan {
        node(&mut out, lan);
        if let Some(inet) = &s.internet {
            edge(&mut out, &inet.id, &lan.id, &lan_attrs);
        }
        if let Some(cluster) = &s.cluster {
            node(&mut out, cluster);
            let _ = writeln!(out, "  {{rank=same; {}; {}}}", q(&lan.id), q(&cluster.id));
            edge(&mut out, &lan.id, &cluster.id, INVISIBLE);
        }
    }

    // Panels in rows. In a lab the LAN runs as a bus over each row, one point above each
    // machine, the rows' buses joined by a trunk on the left; the LAN box hangs on the first
    // point, so it sits top left, where a reader starts.
    let cols = columns(s.panels.len());
    let rows: Vec<&[scene::Panel]> = s.panels.chunks(cols.max(1)).collect();
    let bus = |r: usize, c: usize| format!("lan-bus-{r}-{c}");
    for (r, panels) in rows.iter().enumerate() {
        if let Some(lan) = &s.lan {
            let mut same = Vec::new();
            for c in 0..panels.len() {
                let _ = writeln!(
                    out,
                    "  {} [shape=point, width=0.08, color={}, label=\"\", tooltip=\"LAN\"];",
                    q(&bus(r, c)),
                    q(LAN)
                );
                same.push(q(&bus(r, c)));
                if c > 0 {
                    edge(&mut out, &bus(r, c - 1), &bus(r, c), &lan_attrs);
                }
            }
            let _ = writeln!(out, "  {{rank=same; {}}}", same.join("; "));
            let from = if r == 0 {
                lan.id.clone()
            } else {
                bus(r - 1, 0)
            };
            edge(&mut out, &from, &bus(r, 0), &lan_attrs);
        }
        for (c, p) in panels.iter().enumerate() {
            panel(&mut out, p, s.lan.is_some());
            if s.lan.is_some() {
                edge(
                    &mut out,
                    &bus(r, c),
                    &p.uplink.id,
                    &format!("{lan_attrs}, headport=n"),
                );
            }
            // The next row hangs below this one.
            // (each machine over the one in its column, so the rows stay aligned).
            if r + 1 < rows.len() && s.lan.is_some() {
                let below = c.min(rows[r + 1].len() - 1);
                edge(
                    &mut out,
                    last_block(p),
                    &bus(r + 1, below),
                    &format!("{INVISIBLE}, weight=10"),
                );
            }
        }
        if s.lan.is_none() && r + 1 < rows.len() {
            for (above, below) in panels.iter().zip(rows[r + 1].iter()) {
                edge(&mut out, last_block(above), &below.uplink.id, INVISIBLE);
            }
        }
    }

    let mut legend = String::from("<<TABLE BORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"1\">");
    legend.push_str(&row("<B>Legend:</B>"));
    for l in &s.legend {
        let colour = if l.starts_with("CLOSED") {
            CLOSED
        } else if l.starts_with("blue") {
            FORWARD
        } else {
            PROBLEM
        };
        legend.push_str(&row(&format!("<FONT COLOR=\"{colour}\">{}</FONT>", xml(l))));
    }
    legend.push_str("</TABLE>>");
    let _ = writeln!(
        out,
        "  \"legend\" [id=\"legend\", shape=plaintext, label={legend}];"
    );
    if let Some(last) = rows.last() {
        for p in last.iter() {
            edge(&mut out, last_block(p), "legend", INVISIBLE);
        }
    }
    out.push_str("}\n");
    out
}

fn last_block(p: &scene::Panel) -> &str {
    match &p.info {
        Some(info) => &info.id,
        None => p
            .ports
            .last()
            .map(|(b, _, _)| &b.id)
            .or_else(|| p.nodes.last().map(|n| &n.id))
            .unwrap_or(&p.switch.id),
    }
}

fn panel(out: &mut String, p: &scene::Panel, lab: bool) {
    let _ = writeln!(out, " subgraph {} {{", q(&format!("cluster_{}", p.id)));
    let mut heading = String::from("<<TABLE BORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"2\">");
    // Two short lines (name, then kind) rather than one longer than the machine's boxes.
    let (name, kind) = p.heading.split_once(" — ").unwrap_or((&p.heading, ""));
    heading.push_str(&row(&format!("<B>{}</B>", xml(name))));
    if !kind.is_empty() {
        heading.push_str(&row(&xml(kind)));
    }
    heading.push_str(&flag_rows(&p.flags));
    heading.push_str("</TABLE>>");
    // In a lab the LAN comes in from above: the heading goes to the bottom, out of its way.
    let _ = writeln!(
        out,
        "  id={}; tooltip={}; label={heading}; labeljust=l; labelloc={}; style=\"rounded\"; color={}; penwidth={};",
        q(&p.id),
        q(&p.heading),
        if lab { "b" } else { "t" },
        q(if p.flags.is_empty() {
            "#ced4da"
        } else {
            PROBLEM
        }),
        if p.flags.is_empty() { 1 } else { 3 }
    );
    node(out, &p.uplink);
    node(out, &p.switch);
    // A node and its forwards box share a `group`, which keeps the arrow between them straight.
    for n in &p.nodes {
        node(out, n);
        let _ = writeln!(out, "  {} [group={}];", q(&n.id), q(&n.id));
    }
    for (b, target, _) in &p.ports {
        node(out, b);
        let _ = writeln!(out, "  {} [group={}];", q(&b.id), q(&p.nodes[*target].id));
    }
    if let Some(info) = &p.info {
        node(out, info);
    }
    edge(
        out,
        &p.uplink.id,
        &p.switch.id,
        &format!("{LINK}, tailport=s, headport=n"),
    );
    for n in &p.nodes {
        edge(
            out,
            &p.switch.id,
            &n.id,
            &format!("{LINK}, tailport=s, headport=n"),
        );
    }
    // A node's forwards box sits under it; the arrow goes up into the node's bottom, away
    // from the switch's links, which come in from the top.
    for (b, target, arrow) in &p.ports {
        let style = if b.flagged() {
            format!(
                "color={}, style=dashed, penwidth=2, label=<<FONT COLOR={}><B>DRIFT: broken</B></FONT>>",
                q(PROBLEM),
                q(PROBLEM)
            )
        } else {
            format!("color={}, penwidth=1.5", q(FORWARD))
        };
        edge(
            out,
            &p.nodes[*target].id,
            &b.id,
            &format!(
                "id={}, tooltip={}, dir=back, tailport=s, headport=n, {style}",
                q(arrow),
                q(&format!("port forwards into {}", p.nodes[*target].title))
            ),
        );
    }
    if let Some(info) = &p.info {
        if p.nodes.is_empty() {
            edge(out, &p.switch.id, &info.id, INVISIBLE);
        }
        for n in &p.nodes {
            edge(out, &n.id, &info.id, INVISIBLE);
        }
        for (b, _, _) in &p.ports {
            edge(out, &b.id, &info.id, INVISIBLE);
        }
    }
    out.push_str(" }\n");
}

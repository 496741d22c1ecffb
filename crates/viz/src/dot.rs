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
    let _ = writeln!(
        out,
        "  {} [id={}, label={}, fillcolor={}, color={}, penwidth={width}, style={}{link}];",
        q(&b.id),
        q(&b.id),
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
    if let Some(lan) = &s.lan {
        node(&mut out, lan);
        if let Some(inet) = &s.internet {
            edge(
                &mut out,
                &inet.id,
                &lan.id,
                &format!("dir=none, color={}, penwidth=2.5", q(LAN)),
            );
        }
    }

    let cols = columns(s.panels.len());
    let rows: Vec<&[scene::Panel]> = s.panels.chunks(cols.max(1)).collect();
    let lan_attrs = format!("dir=none, color={}, penwidth=2.5", q(LAN));
    for (r, panels) in rows.iter().enumerate() {
        let bus = format!("lan-bus-{r}");
        if let Some(lan) = &s.lan {
            let _ = writeln!(
                out,
                "  {} [shape=point, width=0.08, color={}, label=\"\"];",
                q(&bus),
                q(LAN)
            );
            let from = if r == 0 {
                lan.id.clone()
            } else {
                format!("lan-bus-{}", r - 1)
            };
            edge(&mut out, &from, &bus, &lan_attrs);
        }
        for p in panels.iter() {
            panel(&mut out, p);
            if s.lan.is_some() {
                edge(&mut out, &bus, &p.uplink.id, &lan_attrs);
            }
            // The next row hangs below this one.
            if r + 1 < rows.len() && s.lan.is_some() {
                edge(
                    &mut out,
                    last_block(p),
                    &format!("lan-bus-{}", r + 1),
                    INVISIBLE,
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
        None => p.nodes.last().map_or(&p.switch.id, |n| &n.id),
    }
}

fn panel(out: &mut String, p: &scene::Panel) {
    let _ = writeln!(out, " subgraph {} {{", q(&format!("cluster_{}", p.id)));
    let mut heading = String::from("<<TABLE BORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"1\">");
    heading.push_str(&row(&format!("<B>{}</B>", xml(&p.heading))));
    heading.push_str(&flag_rows(&p.flags));
    heading.push_str("</TABLE>>");
    let _ = writeln!(
        out,
        "  id={}; label={heading}; labeljust=l; style=\"rounded\"; color={}; penwidth={};",
        q(&p.id),
        q(if p.flags.is_empty() {
            "#ced4da"
        } else {
            PROBLEM
        }),
        if p.flags.is_empty() { 1 } else { 3 }
    );
    node(out, &p.uplink);
    for (b, _) in &p.ports {
        node(out, b);
    }
    node(out, &p.switch);
    for n in &p.nodes {
        node(out, n);
    }
    if let Some(info) = &p.info {
        node(out, info);
    }
    if !p.ports.is_empty() {
        let mut same = vec![q(&p.uplink.id)];
        same.extend(p.ports.iter().map(|(b, _)| q(&b.id)));
        let _ = writeln!(out, "  {{rank=same; {}}}", same.join("; "));
    }
    edge(out, &p.uplink.id, &p.switch.id, LINK);
    for n in &p.nodes {
        edge(out, &p.switch.id, &n.id, LINK);
    }
    for (b, target) in &p.ports {
        edge(
            out,
            &b.id,
            &p.nodes[*target].id,
            &format!("color={}, penwidth=1.5, constraint=false", q(FORWARD)),
        );
    }
    if let Some(info) = &p.info {
        if p.nodes.is_empty() {
            edge(out, &p.switch.id, &info.id, INVISIBLE);
        }
        for n in &p.nodes {
            edge(out, &n.id, &info.id, INVISIBLE);
        }
    }
    out.push_str(" }\n");
}

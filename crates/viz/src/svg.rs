//! SVG of the built-in layout.

use std::fmt::Write as _;

use crate::layout::{self, Drawing, Placed, Wire, WireKind, LINE_H};
use crate::scene::{Flag, Style};
use crate::text::xml;
use crate::Topology;

pub const FONT: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";
/// Colour of problems (drift, failed cells); always paired with their `TAG:` text.
pub const PROBLEM: &str = "#d9480f";
/// Colour of a closed (offline) uplink; always paired with the word CLOSED.
pub const CLOSED: &str = "#c92a2a";
pub const FORWARD: &str = "#1971c2";
pub const LAN: &str = "#7048e8";

/// Fill, stroke and dash of a block's frame.
pub(crate) fn colours(style: Style) -> (&'static str, &'static str, Option<&'static str>) {
    match style {
        Style::Internet => ("#f8f9fa", "#868e96", None),
        Style::Lan => ("#f3f0ff", LAN, None),
        Style::Nat | Style::Adapter => ("#f1f3f5", "#495057", None),
        Style::Closed => ("#fff5f5", CLOSED, Some("6 4")),
        Style::Port => ("#e7f5ff", FORWARD, None),
        Style::Switch => ("#ebfbee", "#2b8a3e", None),
        Style::Node => ("#e7f5ff", "#1c5d99", None),
        Style::Info => ("#fcfcfc", "#adb5bd", None),
    }
}

pub(crate) fn class(style: Style) -> &'static str {
    match style {
        Style::Internet => "internet",
        Style::Lan => "lan",
        Style::Nat => "uplink nat",
        Style::Adapter => "uplink adapter",
        Style::Closed => "uplink closed",
        Style::Port => "port",
        Style::Switch => "switch",
        Style::Node => "node",
        Style::Info => "info",
    }
}

/// The topology drawn by the built-in layout, as a standalone SVG document.
pub fn builtin_svg(topo: &Topology) -> String {
    draw(&layout::layout(topo))
}

pub fn draw(d: &Drawing) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}" font-size="12" id="picture" role="img" aria-label="{title}">"##,
        w = d.width,
        h = d.height,
        title = xml(&d.title),
    );
    let _ = write!(s, "<title>{}</title>", xml(&d.title));
    let _ = write!(
        s,
        r##"<defs><marker id="edgenet-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{FORWARD}"/></marker><marker id="edgenet-arrow-broken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{PROBLEM}"/></marker></defs>"##
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>"##,
        d.width, d.height
    );
    let mut y = 20.0 + LINE_H;
    text(
        &mut s,
        20.0,
        y,
        &d.title,
        "font-size=\"16\" font-weight=\"bold\"",
    );
    for line in &d.subtitle {
        y += LINE_H;
        text(&mut s, 20.0, y, line, "fill=\"#495057\"");
    }
    for f in &d.flags {
        flag(&mut s, 20.0, &mut y, f);
    }
    for w in &d.wires {
        wire(&mut s, w);
    }
    for b in &d.boxes {
        block(&mut s, b);
    }
    for f in &d.frames {
        let _ = write!(
            s,
            r##"<g id="{}" class="machine"><rect x="{}" y="{}" width="{}" height="{}" rx="10" fill="#ffffff" stroke="{}" stroke-width="{}"/>"##,
            xml(&f.id),
            f.rect.x,
            f.rect.y,
            f.rect.w,
            f.rect.h,
            if f.flags.is_empty() {
                "#ced4da"
            } else {
                PROBLEM
            },
            if f.flags.is_empty() { 1 } else { 3 },
        );
        let mut y = f.rect.y + 4.0 + LINE_H;
        text(
            &mut s,
            f.rect.x + 26.0,
            y,
            &f.heading,
            "font-weight=\"bold\"",
        );
        for fl in &f.flags {
            flag(&mut s, f.rect.x + 26.0, &mut y, fl);
        }
        for w in &f.wires {
            wire(&mut s, w);
        }
        for b in &f.boxes {
            block(&mut s, b);
        }
        s.push_str("</g>");
    }
    let mut y = d.legend_y;
    text(
        &mut s,
        20.0,
        y + LINE_H - 3.0,
        "Legend:",
        "font-weight=\"bold\" fill=\"#495057\"",
    );
    for l in &d.legend {
        y += LINE_H;
        let colour = if l.starts_with("CLOSED") {
            CLOSED
        } else if l.starts_with("blue") {
            FORWARD
        } else {
            PROBLEM
        };
        let _ = write!(
            s,
            r##"<text x="20" y="{}" fill="{colour}">{}</text>"##,
            y + LINE_H - 3.0,
            xml(l)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn text(s: &mut String, x: f64, y: f64, t: &str, attrs: &str) {
    let _ = write!(s, r#"<text x="{x}" y="{y}" {attrs}>{}</text>"#, xml(t));
}

fn flag(s: &mut String, x: f64, y: &mut f64, f: &Flag) {
    if let Some(a) = &f.anchor {
        let _ = write!(s, r##"<a href="#{}">"##, xml(a));
    }
    for line in &f.lines {
        *y += LINE_H;
        text(
            s,
            x,
            *y,
            line,
            &format!("fill=\"{PROBLEM}\" font-weight=\"bold\" class=\"problem\""),
        );
    }
    if f.anchor.is_some() {
        s.push_str("</a>");
    }
}

fn wire(s: &mut String, w: &Wire) {
    let points: Vec<String> = w.points.iter().map(|(x, y)| format!("{x},{y}")).collect();
    let (colour, width, extra) = match w.kind {
        WireKind::Link => ("#495057", 1.5, ""),
        WireKind::Forward => (FORWARD, 1.5, r#" marker-end="url(#edgenet-arrow)""#),
        WireKind::BrokenForward => (
            PROBLEM,
            2.0,
            r#" stroke-dasharray="5 4" marker-end="url(#edgenet-arrow-broken)""#,
        ),
        WireKind::Lan => (LAN, 2.5, ""),
    };
    if let Some(id) = &w.id {
        let _ = write!(s, r#"<g id="{}" class="arrow">"#, xml(id));
    }
    let _ = write!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="{width}"{extra}/>"#,
        points.join(" ")
    );
    if let (Some(label), Some((x, y))) = (&w.label, w.points.first()) {
        // Beside the arrow, halfway along its first segment.
        let y2 = w.points.get(1).map_or(*y, |p| p.1);
        text(
            s,
            x + 6.0,
            (y + y2) / 2.0 + 4.0,
            label,
            &format!("fill=\"{PROBLEM}\" font-weight=\"bold\" class=\"problem\""),
        );
    }
    if w.id.is_some() {
        s.push_str("</g>");
    }
}

fn block(s: &mut String, p: &Placed) {
    let b = &p.block;
    let r = &p.rect;
    let (mut fill, mut stroke, dash) = colours(b.style);
    let mut width = if b.style == Style::Closed { 2.0 } else { 1.2 };
    if b.flagged() {
        fill = "#fff4e6";
        stroke = PROBLEM;
        width = 3.0;
    }
    let _ = write!(
        s,
        r#"<g id="{}" class="{}{}"><title>{}</title>"#,
        xml(&b.id),
        class(b.style),
        if b.flagged() { " problem" } else { "" },
        xml(&b.title)
    );
    let _ = write!(
        s,
        r#"<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{width}"{}/>"#,
        r.x,
        r.y,
        r.w,
        r.h,
        dash.map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#))
    );
    let x = r.x + 8.0;
    let mut y = r.y + 8.0 + LINE_H - 3.0;
    let title_colour = if b.style == Style::Closed {
        CLOSED
    } else {
        "#212529"
    };
    text(
        s,
        x,
        y,
        &b.title,
        &format!("font-weight=\"bold\" fill=\"{title_colour}\""),
    );
    for line in &b.lines {
        y += LINE_H;
        text(s, x, y, line, "fill=\"#212529\"");
    }
    if b.flagged() {
        let mut fy = y + 4.0;
        for f in &b.flags {
            flag(s, x, &mut fy, f);
        }
    }
    s.push_str("</g>");
}

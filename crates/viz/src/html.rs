//! The lab page (`edgenet lab status --output html`): one self-contained file — the picture
//! inline, styles inline, no scripts, nothing fetched — with the reachability matrix under it
//! and every failed cell linked to where the picture shows it. It is also well-formed XML, so
//! it can be checked by any XML parser.

use std::fmt::Write as _;

use edgenet_lab::Matrix;

use crate::from_lab::cell_anchor;
use crate::text::xml;
use crate::Topology;

const STYLE: &str = "
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 1.5em; color: #212529; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
.picture { overflow: auto; border: 1px solid #dee2e6; padding: 0.5em; max-height: 80vh; }
.picture svg { display: block; }
g:target > rect, g:target > polygon, g:target > path { stroke: #d9480f; stroke-width: 6; }
tr:target { outline: 3px solid #d9480f; }
table { border-collapse: collapse; font-family: DejaVu Sans Mono, Menlo, Consolas, monospace; font-size: 0.85em; }
th, td { border: 1px solid #dee2e6; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f1f3f5; }
tr.fail td { background: #fff4e6; }
td.verdict-fail { color: #d9480f; font-weight: bold; }
.summary-fail { color: #d9480f; font-weight: bold; }
";

/// Only the `<svg>…</svg>` element of an SVG document (Graphviz's starts with an XML
/// declaration and a DOCTYPE, which cannot stand inside a page).
pub fn embeddable(svg: &str) -> &str {
    let start = svg.find("<svg").unwrap_or(0);
    let end = svg
        .rfind("</svg>")
        .map_or(svg.len(), |i| i + "</svg>".len());
    &svg[start..end]
}

pub fn lab_page(topo: &Topology, matrix: &Matrix, svg: &str) -> String {
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
    let _ = writeln!(s, "<title>{}</title>", xml(&topo.title));
    let _ = writeln!(s, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(s, "<h1>{}</h1>", xml(&topo.title));
    for l in &topo.subtitle {
        let _ = writeln!(s, "<p>{}</p>", xml(l));
    }
    s.push_str("<h2 id=\"the-cluster\">The cluster</h2>\n<div class=\"picture\">\n");
    s.push_str(embeddable(svg));
    s.push_str("\n</div>\n");

    let failed = matrix.cells.iter().filter(|c| !c.ok).count();
    s.push_str("<h2 id=\"reachability\">Reachability matrix</h2>\n");
    let _ = writeln!(
        s,
        "<p class=\"{}\">{} of {} cells as expected{}</p>",
        if failed == 0 {
            "summary-ok"
        } else {
            "summary-fail"
        },
        matrix.cells.len() - failed,
        matrix.cells.len(),
        if failed == 0 {
            String::new()
        } else {
            format!(" — {failed} FAILED (each linked to where the picture shows it)")
        }
    );
    s.push_str("<table>\n<thead><tr><th>row</th><th>from</th><th>to</th><th>check</th><th>expected</th><th>actual</th><th>ok</th><th>detail</th></tr></thead>\n<tbody>\n");
    for (i, c) in matrix.cells.iter().enumerate() {
        let anchor = cell_anchor(i);
        let verdict = if c.ok {
            "<td class=\"verdict-ok\">ok</td>".to_string()
        } else {
            let target = topo
                .problems
                .iter()
                .find(|p| p.covers(&anchor))
                .map_or_else(|| "picture".to_string(), |p| p.at.element_id());
            format!(
                "<td class=\"verdict-fail\"><a href=\"#{}\">FAIL: see the picture</a></td>",
                xml(&target)
            )
        };
        let _ = writeln!(
            s,
            "<tr id=\"{anchor}\" class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{verdict}<td>{}</td></tr>",
            if c.ok { "ok" } else { "fail" },
            xml(c.row.as_str()),
            xml(&c.from),
            xml(&c.to),
            xml(&c.what),
            xml(c.expected.as_str()),
            xml(c.actual.as_str()),
            xml(&c.detail),
        );
    }
    s.push_str("</tbody>\n</table>\n");
    for note in &matrix.notes {
        let _ = writeln!(s, "<p>note: {}</p>", xml(note));
    }
    s.push_str("<p><small>Made by edgenet lab status. This page is self-contained: it fetches nothing.</small></p>\n</body>\n</html>\n");
    s
}

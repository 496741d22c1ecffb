//! Which layout draws the SVG, and the one place that runs a program: Graphviz's `dot`.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

use crate::{dot, svg, Topology};

/// Who lays the picture out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Graphviz when `dot` runs, the built-in layout otherwise.
    Auto,
    Builtin,
    /// Graphviz or an error.
    Graphviz,
}

impl Engine {
    /// `auto`, `builtin` or `graphviz` (the `EDGENET_LAYOUT` variable).
    pub fn parse(value: &str) -> Result<Engine, String> {
        match value {
            "" | "auto" => Ok(Engine::Auto),
            "builtin" => Ok(Engine::Builtin),
            "graphviz" => Ok(Engine::Graphviz),
            other => Err(format!(
                "EDGENET_LAYOUT is {other:?}; use auto, builtin or graphviz"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub svg: String,
    /// `graphviz` or `builtin`.
    pub layout: &'static str,
    /// Why Graphviz was not used when it was asked for by `Auto`.
    pub fallback: Option<String>,
}

/// The topology as SVG. `run_dot` turns DOT text into SVG (normally [`run_dot`]); it is a
/// parameter so that callers and tests choose whether a program runs.
pub fn render_svg(
    topo: &Topology,
    engine: Engine,
    run_dot: &dyn Fn(&str) -> io::Result<String>,
) -> Result<Rendered, String> {
    let builtin = |fallback| Rendered {
        svg: svg::builtin_svg(topo),
        layout: "builtin",
        fallback,
    };
    match engine {
        Engine::Builtin => Ok(builtin(None)),
        Engine::Auto | Engine::Graphviz => match run_dot(&dot::to_dot(topo)) {
            Ok(svg) => Ok(Rendered {
                svg,
                layout: "graphviz",
                fallback: None,
            }),
            Err(e) if engine == Engine::Auto => Ok(builtin(Some(format!(
                "Graphviz's dot did not run ({e}); the built-in layout drew the picture"
            )))),
            Err(e) => Err(format!(
                "Graphviz's dot did not run: {e} (install Debian's graphviz, or set EDGENET_LAYOUT=builtin)"
            )),
        },
    }
}

/// Runs `dot -Tsvg` on `dot_text` and returns its SVG.
pub fn run_dot(dot_text: &str) -> io::Result<String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Written from a thread: dot may fill its stdout pipe before it has read all its input.
    let mut stdin = child.stdin.take().expect("piped");
    let input = dot_text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut svg = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut svg)?;
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut err)?;
    let status = child.wait()?;
    writer
        .join()
        .map_err(|_| io::Error::other("writing to dot panicked"))??;
    if !status.success() || !svg.contains("<svg") {
        return Err(io::Error::other(format!(
            "dot -Tsvg failed ({status}): {}",
            err.trim()
        )));
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology {
            title: "t".into(),
            ..Default::default()
        }
    }

    fn absent(_: &str) -> io::Result<String> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "No such file or directory",
        ))
    }

    #[test]
    fn without_dot_auto_falls_back_and_graphviz_says_what_to_install() {
        let r = render_svg(&topo(), Engine::Auto, &absent).unwrap();
        assert_eq!(r.layout, "builtin");
        assert!(r.svg.starts_with("<svg"));
        assert!(r.fallback.unwrap().contains("No such file"));
        let e = render_svg(&topo(), Engine::Graphviz, &absent).unwrap_err();
        assert!(
            e.contains("graphviz") && e.contains("EDGENET_LAYOUT=builtin"),
            "{e}"
        );
    }

    #[test]
    fn the_runner_gets_the_dot_text_and_builtin_never_runs_it() {
        let seen = std::cell::RefCell::new(String::new());
        let runner = |dot: &str| -> io::Result<String> {
            *seen.borrow_mut() = dot.to_string();
            Ok("<svg/>".into())
        };
        let r = render_svg(&topo(), Engine::Auto, &runner).unwrap();
        assert_eq!((r.layout, r.svg.as_str()), ("graphviz", "<svg/>"));
        assert!(seen.borrow().starts_with("digraph edgenet {"));
        seen.borrow_mut().clear();
        render_svg(&topo(), Engine::Builtin, &runner).unwrap();
        assert!(seen.borrow().is_empty());
        assert!(Engine::parse("fancy").is_err());
    }
}

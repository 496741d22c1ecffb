//! A topology as labelled blocks with their problems attached: what both the DOT writer and
//! the built-in layout draw, so the two pictures say the same.

use crate::model::{self, Location, Problem, Topology, UplinkKind, LEGEND};
use crate::text::wrap;

/// Problem labels wrap at this many characters.
const FLAG_WIDTH: usize = 46;
/// Other lines (a long proxy URL, a long DNS list) wrap at this many.
const LINE_WIDTH: usize = 52;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Internet,
    Lan,
    Nat,
    Adapter,
    Closed,
    Port,
    Switch,
    Node,
    Info,
}

/// A problem as drawn: its wrapped label and where it links to.
#[derive(Debug, Clone)]
pub(crate) struct Flag {
    pub lines: Vec<String>,
    pub anchor: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub id: String,
    pub style: Style,
    pub title: String,
    pub lines: Vec<String>,
    pub flags: Vec<Flag>,
}

impl Block {
    fn new(id: String, style: Style, title: &str, lines: &[String]) -> Block {
        Block {
            id,
            style,
            title: title.to_string(),
            lines: lines.iter().flat_map(|l| wrap(l, LINE_WIDTH)).collect(),
            flags: Vec::new(),
        }
    }

    pub fn flagged(&self) -> bool {
        !self.flags.is_empty()
    }

    /// Every text line, title first, then the lines, then the problems.
    pub fn all_lines(&self) -> Vec<&str> {
        let mut out = vec![self.title.as_str()];
        out.extend(self.lines.iter().map(String::as_str));
        for f in &self.flags {
            out.extend(f.lines.iter().map(String::as_str));
        }
        out
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Panel {
    pub id: String,
    pub heading: String,
    pub flags: Vec<Flag>,
    pub uplink: Block,
    /// Port-forward blocks and the index (in `nodes`) of the node each one targets.
    pub ports: Vec<(Block, usize)>,
    pub switch: Block,
    pub nodes: Vec<Block>,
    pub info: Option<Block>,
}

#[derive(Debug, Clone)]
pub(crate) struct Scene {
    pub title: String,
    pub subtitle: Vec<String>,
    pub flags: Vec<Flag>,
    pub internet: Option<Block>,
    pub lan: Option<Block>,
    pub panels: Vec<Panel>,
    pub legend: Vec<String>,
}

pub(crate) fn build(topo: &Topology) -> Scene {
    let (internet, lan) = match &topo.lan {
        Some(l) => (
            l.internet
                .as_ref()
                .map(|(title, lines)| Block::new("internet".into(), Style::Internet, title, lines)),
            Some(Block::new("lan".into(), Style::Lan, &l.title, &l.lines)),
        ),
        None => (None, None),
    };
    let panels = topo.machines.iter().map(panel).collect();
    let mut scene = Scene {
        title: topo.title.clone(),
        subtitle: topo.subtitle.clone(),
        flags: Vec::new(),
        internet,
        lan,
        panels,
        legend: LEGEND.iter().map(|s| s.to_string()).collect(),
    };
    for p in &topo.problems {
        attach(&mut scene, p);
    }
    scene
}

fn panel(m: &model::Machine) -> Panel {
    let uplink_style = match m.uplink.kind {
        UplinkKind::Nat => Style::Nat,
        UplinkKind::Adapter => Style::Adapter,
        UplinkKind::Closed => Style::Closed,
    };
    let nodes: Vec<Block> = m
        .nodes
        .iter()
        .map(|n| {
            Block::new(
                model::node_id(&m.name, &n.name),
                Style::Node,
                &n.name,
                &n.lines,
            )
        })
        .collect();
    let ports = m
        .forwards
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let target = m.nodes.iter().position(|n| n.name == f.node)?;
            let block = Block::new(
                model::port_id(&m.name, i),
                Style::Port,
                &format!("host :{}/{}", f.host_port, f.protocol),
                &[format!("forwarded → {} :{}", f.node, f.node_port)],
            );
            Some((block, target))
        })
        .collect();
    Panel {
        id: model::machine_id(&m.name),
        heading: m.heading.clone(),
        flags: Vec::new(),
        uplink: Block::new(
            Location::Uplink(m.name.clone()).element_id(),
            uplink_style,
            &m.uplink.title,
            &m.uplink.lines,
        ),
        ports,
        switch: Block::new(
            Location::Switch(m.name.clone()).element_id(),
            Style::Switch,
            &m.switch.name,
            &m.switch.lines,
        ),
        nodes,
        info: (!m.info.is_empty())
            .then(|| Block::new(model::info_id(&m.name), Style::Info, "cluster", &m.info)),
    }
}

fn attach(scene: &mut Scene, p: &Problem) {
    let flag = Flag {
        lines: wrap(&p.label(), FLAG_WIDTH),
        anchor: p.anchor.clone(),
    };
    let id = p.at.element_id();
    let machine = match &p.at {
        Location::Picture => None,
        Location::Lan => {
            match &mut scene.lan {
                Some(lan) => lan.flags.push(flag),
                None => scene.flags.push(flag),
            }
            return;
        }
        Location::Machine(m)
        | Location::Uplink(m)
        | Location::Firewall(m)
        | Location::Switch(m)
        | Location::Node { machine: m, .. } => Some(model::machine_id(m)),
    };
    let Some(panel) = machine.and_then(|mid| scene.panels.iter_mut().find(|p| p.id == mid)) else {
        scene.flags.push(flag);
        return;
    };
    let block = std::iter::once(&mut panel.uplink)
        .chain(std::iter::once(&mut panel.switch))
        .chain(panel.nodes.iter_mut())
        .find(|b| b.id == id);
    match block {
        Some(b) => b.flags.push(flag),
        None => panel.flags.push(flag),
    }
}

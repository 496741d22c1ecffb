//! A topology as labelled blocks with their problems attached: what both the DOT writer and
//! the built-in layout draw, so the two pictures say the same.

use crate::model::{self, Location, Problem, Topology, UplinkKind, LEGEND};
use crate::text::wrap;

/// Problem labels wrap at this many characters.
const FLAG_WIDTH: usize = 46;
/// Other lines (a long proxy URL, a long DNS list) wrap at this many.
const LINE_WIDTH: usize = 52;
/// Most problem labels drawn on one box; the rest are summed up in one line, so a box stays
/// small however many cells failed there (the page's matrix lists them all).
pub(crate) const MAX_FLAGS: usize = 4;
/// Most port forwards listed in one node's forwards box.
pub(crate) const MAX_FORWARD_LINES: usize = 8;

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
    /// One block per node that has port forwards, listing them, and the index (in `nodes`)
    /// of that node; the id of the arrow from the block to the node is the third field.
    pub ports: Vec<(Block, usize, String)>,
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
    /// Cluster-wide labels drawn once (beside the LAN).
    pub cluster: Option<Block>,
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
    let cluster = (!topo.cluster_info.is_empty()).then(|| {
        Block::new(
            "cluster".into(),
            Style::Info,
            "cluster (every machine)",
            &topo.cluster_info,
        )
    });
    let mut scene = Scene {
        title: topo.title.clone(),
        subtitle: topo.subtitle.clone(),
        flags: Vec::new(),
        internet,
        lan,
        cluster,
        panels,
        legend: LEGEND.iter().map(|s| s.to_string()).collect(),
    };
    for p in &topo.problems {
        attach(&mut scene, p);
    }
    cap_flags(&mut scene);
    scene
}

/// At most [`MAX_FLAGS`] problem labels per box or panel; the rest become one line.
fn cap_flags(scene: &mut Scene) {
    fn cap(flags: &mut Vec<Flag>) {
        if flags.len() <= MAX_FLAGS {
            return;
        }
        let hidden = flags.len() - (MAX_FLAGS - 1);
        // The summary links where the first hidden one did.
        let anchor = flags[MAX_FLAGS - 1].anchor.clone();
        flags.truncate(MAX_FLAGS - 1);
        flags.push(Flag {
            lines: vec![format!("… and {hidden} more problems here")],
            anchor,
        });
    }
    cap(&mut scene.flags);
    for b in scene.lan.iter_mut().chain(scene.internet.iter_mut()) {
        cap(&mut b.flags);
    }
    for p in &mut scene.panels {
        cap(&mut p.flags);
        for b in std::iter::once(&mut p.uplink)
            .chain(std::iter::once(&mut p.switch))
            .chain(p.nodes.iter_mut())
            .chain(p.ports.iter_mut().map(|(b, _, _)| b))
        {
            cap(&mut b.flags);
        }
    }
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
    // One box per receiving node, however many forwards: the picture's width does not grow
    // with them.
    let ports = m
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(target, n)| {
            let list: Vec<&model::Forward> =
                m.forwards.iter().filter(|f| f.node == n.name).collect();
            if list.is_empty() {
                return None;
            }
            let mut lines: Vec<String> = list
                .iter()
                .take(MAX_FORWARD_LINES)
                .map(|f| format!("host :{}/{} → :{}", f.host_port, f.protocol, f.node_port))
                .collect();
            if list.len() > MAX_FORWARD_LINES {
                lines.push(format!(
                    "… and {} more (edgenet plan lists all)",
                    list.len() - MAX_FORWARD_LINES
                ));
            }
            let block = Block::new(
                model::forwards_id(&m.name, &n.name),
                Style::Port,
                &format!("port forwards → {}", n.name),
                &lines,
            );
            Some((block, target, model::forwards_arrow_id(&m.name, &n.name)))
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
        | Location::Node { machine: m, .. }
        | Location::Forwards { machine: m, .. } => Some(model::machine_id(m)),
    };
    let Some(panel) = machine.and_then(|mid| scene.panels.iter_mut().find(|p| p.id == mid)) else {
        scene.flags.push(flag);
        return;
    };
    let block = std::iter::once(&mut panel.uplink)
        .chain(std::iter::once(&mut panel.switch))
        .chain(panel.nodes.iter_mut())
        .chain(panel.ports.iter_mut().map(|(b, _, _)| b))
        .find(|b| b.id == id);
    match block {
        Some(b) => b.flags.push(flag),
        None => panel.flags.push(flag),
    }
}

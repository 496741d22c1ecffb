//! The built-in layout, used when Graphviz is not installed: every position is computed from
//! the text it has to hold, never hand-placed.
//!
//! A machine is a panel: its uplink (and the host ports it forwards) on top, the switch under
//! it, the nodes side by side under the switch, the cluster labels last. Panels are set in a
//! grid of at most [`MAX_COLUMNS`] columns, so 50 machines make a 6 × 9 grid with the same
//! text size as one. In a lab, the internet and the LAN sit above the grid, and the LAN runs
//! as a bus above every row of panels, dropping into each machine's uplink from the left.

use crate::scene::{self, Block, Flag, Scene};
use crate::Topology;

/// Advance of one character of the 12 px monospace font (DejaVu Sans Mono: 0.602 em), with
/// a little room for fonts that run wider.
pub const CHAR_W: f64 = 7.4;
pub const LINE_H: f64 = 15.0;
const PAD: f64 = 8.0;
const MARGIN: f64 = 20.0;
/// Inner margin of a machine panel.
const PANEL_PAD: f64 = 24.0;
const GAP: f64 = 24.0;
/// Most panels side by side.
pub const MAX_COLUMNS: usize = 6;
/// Title size relative to the body text.
const TITLE_SCALE: f64 = 1.3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn right(&self) -> f64 {
        self.x + self.w
    }
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }
    pub fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    pub fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.right() && o.x < self.right() && self.y < o.bottom() && o.y < self.bottom()
    }
    pub fn contains(&self, o: &Rect) -> bool {
        self.x <= o.x && self.y <= o.y && o.right() <= self.right() && o.bottom() <= self.bottom()
    }
    fn shifted(&self, dx: f64, dy: f64) -> Rect {
        Rect {
            x: self.x + dx,
            y: self.y + dy,
            ..*self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireKind {
    /// Uplink–switch–node links.
    Link,
    /// A node's port forwards: host ports → node ports (drawn with an arrowhead).
    Forward,
    /// Port forwards the live firewall lacks: dashed, with a DRIFT label.
    BrokenForward,
    /// The lab's LAN.
    Lan,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Wire {
    pub kind: WireKind,
    pub points: Vec<(f64, f64)>,
    /// Element id (port-forward arrows have one).
    pub id: Option<String>,
    /// Text drawn beside the wire.
    pub label: Option<String>,
}

impl Wire {
    fn new(kind: WireKind, points: Vec<(f64, f64)>) -> Wire {
        Wire {
            kind,
            points,
            id: None,
            label: None,
        }
    }

    fn shifted(&self, dx: f64, dy: f64) -> Wire {
        Wire {
            points: self.points.iter().map(|(x, y)| (x + dx, y + dy)).collect(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Placed {
    pub rect: Rect,
    pub(crate) block: Block,
}

impl Placed {
    pub fn id(&self) -> &str {
        &self.block.id
    }
    /// Every line of text the box holds.
    pub fn lines(&self) -> Vec<&str> {
        self.block.all_lines()
    }
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub id: String,
    pub rect: Rect,
    pub heading: String,
    pub(crate) flags: Vec<Flag>,
    pub boxes: Vec<Placed>,
    pub wires: Vec<Wire>,
}

#[derive(Debug, Clone)]
pub struct Drawing {
    pub width: f64,
    pub height: f64,
    pub title: String,
    pub subtitle: Vec<String>,
    pub(crate) flags: Vec<Flag>,
    /// The lab's internet and LAN.
    pub boxes: Vec<Placed>,
    pub wires: Vec<Wire>,
    pub frames: Vec<Frame>,
    /// Top of the legend, and its lines.
    pub legend_y: f64,
    pub legend: Vec<String>,
}

impl Drawing {
    /// Every box, in frames or not.
    pub fn all_boxes(&self) -> impl Iterator<Item = &Placed> {
        self.boxes
            .iter()
            .chain(self.frames.iter().flat_map(|f| f.boxes.iter()))
    }
}

fn text_w(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_W
}

fn block_size(b: &Block) -> (f64, f64) {
    let lines = b.all_lines();
    let widest = lines.iter().map(|l| text_w(l)).fold(0.0, f64::max);
    let gap = if b.flagged() { 4.0 } else { 0.0 };
    (
        (widest + 2.0 * PAD).max(140.0),
        lines.len() as f64 * LINE_H + 2.0 * PAD + gap,
    )
}

fn place(b: &Block, x: f64, y: f64) -> Placed {
    let (w, h) = block_size(b);
    Placed {
        rect: Rect { x, y, w, h },
        block: b.clone(),
    }
}

/// One panel at the origin.
///
/// The nodes sit in columns under the switch; a node's port forwards (one box for all of
/// them) sit in the same column under the node, their arrow running straight up into it, so
/// it never crosses a switch–node link (those enter the nodes from above).
fn panel(p: &scene::Panel) -> Frame {
    let flag_lines: usize = p.flags.iter().map(|f| f.lines.len()).sum();
    let header_h = (1 + flag_lines) as f64 * LINE_H + 14.0;
    let node_sizes: Vec<(f64, f64)> = p.nodes.iter().map(block_size).collect();
    let port_of = |i: usize| p.ports.iter().find(|(_, t, _)| *t == i);
    let col_w: Vec<f64> = node_sizes
        .iter()
        .enumerate()
        .map(|(i, s)| port_of(i).map_or(s.0, |(b, _, _)| s.0.max(block_size(b).0)))
        .collect();
    let nodes_w = col_w.iter().sum::<f64>() + GAP * col_w.len().saturating_sub(1) as f64;
    let (up_w, _) = block_size(&p.uplink);
    let (sw_w, _) = block_size(&p.switch);
    let info_size = p.info.as_ref().map(block_size);
    let core_w = [up_w, sw_w, nodes_w, info_size.map_or(0.0, |s| s.0)]
        .into_iter()
        .fold(0.0, f64::max);
    let cx = PANEL_PAD + core_w / 2.0;

    let mut boxes = Vec::new();
    let mut wires = Vec::new();
    let top = header_h + 10.0;
    let uplink = place(&p.uplink, cx - up_w / 2.0, top);
    let switch = place(&p.switch, cx - sw_w / 2.0, uplink.rect.bottom() + 36.0);
    wires.push(Wire::new(
        WireKind::Link,
        vec![(cx, uplink.rect.bottom()), (cx, switch.rect.y)],
    ));
    // The switch's bus to its nodes runs just under it.
    let bus_y = switch.rect.bottom() + 16.0;
    let nodes_y = switch.rect.bottom() + 40.0;
    let mut x = cx - nodes_w / 2.0;
    let mut placed_nodes = Vec::new();
    for (i, b) in p.nodes.iter().enumerate() {
        let n = place(b, x + (col_w[i] - node_sizes[i].0) / 2.0, nodes_y);
        x += col_w[i] + GAP;
        wires.push(Wire::new(
            WireKind::Link,
            vec![
                (cx, switch.rect.bottom()),
                (cx, bus_y),
                (n.rect.cx(), bus_y),
                (n.rect.cx(), n.rect.y),
            ],
        ));
        placed_nodes.push(n);
    }
    let below_nodes = placed_nodes
        .iter()
        .map(|n| n.rect.bottom())
        .fold(switch.rect.bottom(), f64::max);
    let mut ports = Vec::new();
    for (b, target, arrow_id) in &p.ports {
        let node = &placed_nodes[*target].rect;
        let port = place(b, node.cx() - block_size(b).0 / 2.0, below_nodes + 36.0);
        let mut w = Wire::new(
            if b.flagged() {
                WireKind::BrokenForward
            } else {
                WireKind::Forward
            },
            vec![(node.cx(), port.rect.y), (node.cx(), node.bottom())],
        );
        w.id = Some(arrow_id.clone());
        if b.flagged() {
            w.label = Some("DRIFT: broken".into());
        }
        wires.push(w);
        ports.push(port);
    }
    let below = ports
        .iter()
        .map(|b| b.rect.bottom())
        .fold(below_nodes, f64::max);
    let info = p
        .info
        .as_ref()
        .map(|b| place(b, cx - block_size(b).0 / 2.0, below + GAP));
    boxes.push(uplink);
    boxes.push(switch);
    boxes.extend(placed_nodes);
    boxes.extend(ports);
    boxes.extend(info);
    let heading_w = 30.0 + text_w(&p.heading);
    let flags_w = p
        .flags
        .iter()
        .flat_map(|f| f.lines.iter())
        .map(|l| 30.0 + text_w(l))
        .fold(0.0, f64::max);
    let right = boxes.iter().map(|b| b.rect.right()).fold(0.0, f64::max);
    let bottom = boxes.iter().map(|b| b.rect.bottom()).fold(0.0, f64::max);
    Frame {
        id: p.id.clone(),
        rect: Rect {
            x: 0.0,
            y: 0.0,
            w: (right + PANEL_PAD).max(heading_w.max(flags_w) + PANEL_PAD),
            h: bottom + PANEL_PAD,
        },
        heading: p.heading.clone(),
        flags: p.flags.clone(),
        boxes,
        wires,
    }
}

fn shift_frame(f: &mut Frame, dx: f64, dy: f64) {
    f.rect = f.rect.shifted(dx, dy);
    for b in &mut f.boxes {
        b.rect = b.rect.shifted(dx, dy);
    }
    for w in &mut f.wires {
        *w = w.shifted(dx, dy);
    }
}

/// Columns of the grid for `n` panels: about square, at most [`MAX_COLUMNS`].
pub fn columns(n: usize) -> usize {
    let mut c = 1;
    while c * c < n {
        c += 1;
    }
    c.clamp(1, MAX_COLUMNS)
}

pub fn layout(topo: &Topology) -> Drawing {
    let scene = scene::build(topo);
    layout_scene(&scene)
}

pub(crate) fn layout_scene(scene: &Scene) -> Drawing {
    let title_w = text_w(&scene.title) * TITLE_SCALE;
    let mut width = MARGIN + title_w;
    let mut y = MARGIN + LINE_H * TITLE_SCALE + scene.subtitle.len() as f64 * LINE_H;
    let flag_lines: usize = scene.flags.iter().map(|f| f.lines.len()).sum();
    y += flag_lines as f64 * LINE_H + 16.0;
    for line in scene
        .subtitle
        .iter()
        .chain(scene.flags.iter().flat_map(|f| f.lines.iter()))
    {
        width = width.max(MARGIN + text_w(line));
    }

    let lab = scene.lan.is_some();
    let trunk_x = MARGIN + 10.0;
    let grid_x = if lab { MARGIN + 34.0 } else { MARGIN };
    let mut boxes = Vec::new();
    let mut wires = Vec::new();
    let mut lan_exit = None;
    if let Some(lan) = &scene.lan {
        if let Some(inet) = &scene.internet {
            let placed = place(inet, grid_x, y);
            y = placed.rect.bottom() + 30.0;
            wires.push(Wire::new(
                WireKind::Lan,
                vec![(grid_x + 40.0, placed.rect.bottom()), (grid_x + 40.0, y)],
            ));
            boxes.push(placed);
        }
        let placed = place(lan, grid_x, y);
        lan_exit = Some((placed.rect.x, placed.rect.cy()));
        let mut bottom = placed.rect.bottom();
        // What every machine shares, once, beside the LAN.
        if let Some(cluster) = &scene.cluster {
            let c = place(cluster, placed.rect.right() + GAP, y);
            bottom = bottom.max(c.rect.bottom());
            boxes.push(c);
        }
        y = bottom + 40.0;
        boxes.push(placed);
    }

    let mut frames: Vec<Frame> = scene.panels.iter().map(panel).collect();
    let cols = columns(frames.len());
    let col_w = frames.iter().map(|f| f.rect.w).fold(0.0, f64::max);
    let mut last_bus = None;
    for row in frames.chunks_mut(cols) {
        let row_h = row.iter().map(|f| f.rect.h).fold(0.0, f64::max);
        let bus_y = y - 16.0;
        let mut bus_end = trunk_x;
        for (c, f) in row.iter_mut().enumerate() {
            let dx = grid_x + c as f64 * (col_w + GAP);
            shift_frame(f, dx, y);
            if lab {
                let uplink = &f.boxes[0].rect;
                let drop_x = f.rect.x + 12.0;
                f.wires.push(Wire::new(
                    WireKind::Lan,
                    vec![
                        (drop_x, bus_y),
                        (drop_x, uplink.cy()),
                        (uplink.x, uplink.cy()),
                    ],
                ));
                bus_end = drop_x;
            }
            width = width.max(f.rect.right());
        }
        if lab {
            wires.push(Wire::new(
                WireKind::Lan,
                vec![(trunk_x, bus_y), (bus_end, bus_y)],
            ));
            last_bus = Some(bus_y);
        }
        y += row_h + GAP + if lab { 16.0 } else { 0.0 };
    }
    if let (Some((lx, ly)), Some(bus)) = (lan_exit, last_bus) {
        wires.push(Wire::new(
            WireKind::Lan,
            vec![(lx, ly), (trunk_x, ly), (trunk_x, bus)],
        ));
    }
    for b in &boxes {
        width = width.max(b.rect.right());
    }
    let legend_y = y + 8.0;
    for l in &scene.legend {
        width = width.max(MARGIN + text_w(l));
    }
    Drawing {
        width: (width + MARGIN).ceil(),
        height: (legend_y + scene.legend.len() as f64 * LINE_H + MARGIN).ceil(),
        title: scene.title.clone(),
        subtitle: scene.subtitle.clone(),
        flags: scene.flags.clone(),
        boxes,
        wires,
        frames,
        legend_y,
        legend: scene.legend.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::columns;

    #[test]
    fn the_grid_stays_about_square() {
        assert_eq!(columns(1), 1);
        assert_eq!(columns(2), 2);
        assert_eq!(columns(4), 2);
        assert_eq!(columns(10), 4);
        assert_eq!(columns(50), 6);
    }
}

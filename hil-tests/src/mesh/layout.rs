//! Where the nodes stand: positions in metres, read from the CSV files the
//! shared scenarios use (`node,x_m,y_m,z_m`).

/// A node's position, metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// East.
    pub x: f64,
    /// North.
    pub y: f64,
    /// Height.
    pub z: f64,
}

impl Position {
    /// Straight-line (3D) distance to `other`, metres.
    pub fn distance(&self, other: &Position) -> f64 {
        ((self.x - other.x).powi(2) + (self.y - other.y).powi(2) + (self.z - other.z).powi(2)).sqrt()
    }
}

/// Node positions; node `i` is at `positions[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// A name for reports ("ref30-1").
    pub name: String,
    /// One position per node.
    pub positions: Vec<Position>,
}

/// The five REF-30 layouts, exactly as shared (`../shared/mesh/ref30/`), built in so
/// that the benchmark runs from any directory.
const REF30: [&str; 5] = [
    include_str!("../../data/ref30/layout-1.csv"),
    include_str!("../../data/ref30/layout-2.csv"),
    include_str!("../../data/ref30/layout-3.csv"),
    include_str!("../../data/ref30/layout-4.csv"),
    include_str!("../../data/ref30/layout-5.csv"),
];

impl Layout {
    /// Parses `node,x_m,y_m,z_m` lines (a header line is skipped); nodes must be
    /// numbered 0, 1, 2... in order.
    pub fn parse_csv(name: &str, text: &str) -> Result<Layout, String> {
        let mut positions = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || (n == 0 && line.starts_with("node")) {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let bad = || format!("{name} line {}: expected node,x_m,y_m,z_m, got {line:?}", n + 1);
            if fields.len() != 4 {
                return Err(bad());
            }
            let id: usize = fields[0].parse().map_err(|_| bad())?;
            if id != positions.len() {
                return Err(format!("{name} line {}: node {id} out of order", n + 1));
            }
            let num = |s: &str| s.parse::<f64>().map_err(|_| bad());
            positions.push(Position { x: num(fields[1])?, y: num(fields[2])?, z: num(fields[3])? });
        }
        if positions.len() < 2 {
            return Err(format!("{name}: a mesh needs at least two nodes"));
        }
        Ok(Layout { name: name.to_string(), positions })
    }

    /// REF-30 layout `n` (1..=5).
    pub fn ref30(n: usize) -> Option<Layout> {
        let text = REF30.get(n.checked_sub(1)?)?;
        Some(Layout::parse_csv(&format!("ref30-{n}"), text).expect("the built-in layouts parse"))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether there are no nodes (never, for a parsed layout).
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_ref30_layouts_have_thirty_nodes_in_four_km() {
        for n in 1..=5 {
            let l = Layout::ref30(n).unwrap();
            assert_eq!(l.len(), 30, "{}", l.name);
            assert!(l.positions.iter().all(|p| p.x.abs() <= 2000.0 && p.y.abs() <= 2000.0 && p.z == 1.0));
        }
        assert!(Layout::ref30(0).is_none() && Layout::ref30(6).is_none());
    }

    #[test]
    fn malformed_lines_are_refused_with_their_place() {
        let e = Layout::parse_csv("t", "node,x_m,y_m,z_m\n0,1,2,3\n1,4,5\n").unwrap_err();
        assert!(e.contains("t line 3"), "{e}");
        let e = Layout::parse_csv("t", "0,1,2,3\n2,4,5,6\n").unwrap_err();
        assert!(e.contains("out of order"), "{e}");
        let ok = Layout::parse_csv("t", "0,0,0,0\n1,3,4,0\n").unwrap();
        assert_eq!(ok.positions[0].distance(&ok.positions[1]), 5.0);
    }
}

//! The seeded random neighbour graph: who each node gossips with.
//!
//! A ring over a seeded permutation of the nodes (so the graph is always connected), plus random
//! chords until every node has at least `degree` neighbours. Edges are symmetric. The result
//! depends only on the node count, the degree and the seed.

use std::collections::BTreeSet;

use super::rng::SimRng;

/// Undirected neighbour sets, indexed by node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    neighbours: Vec<BTreeSet<usize>>,
}

impl Graph {
    /// A connected graph over `nodes` nodes where every node has at least `min(degree, nodes −
    /// 1)` neighbours.
    pub fn random(nodes: usize, degree: usize, rng: &mut SimRng) -> Self {
        let mut neighbours = vec![BTreeSet::new(); nodes];
        if nodes < 2 {
            return Graph { neighbours };
        }
        let mut order: Vec<usize> = (0..nodes).collect();
        rng.shuffle(&mut order);
        for (position, node) in order.iter().enumerate() {
            let next = order[(position + 1) % nodes];
            if *node != next {
                neighbours[*node].insert(next);
                neighbours[next].insert(*node);
            }
        }
        let degree = degree.min(nodes - 1);
        // Bounded: each round adds at least one edge while some node is short, and a node can be
        // short only while an edge to it is missing.
        for node in 0..nodes {
            let mut attempts = 0;
            while neighbours[node].len() < degree && attempts < nodes * 8 {
                attempts += 1;
                let other = rng.index(nodes);
                if other != node {
                    neighbours[node].insert(other);
                    neighbours[other].insert(node);
                }
            }
        }
        Graph { neighbours }
    }

    /// The neighbours of `node`.
    pub fn neighbours(&self, node: usize) -> &BTreeSet<usize> {
        static EMPTY: BTreeSet<usize> = BTreeSet::new();
        self.neighbours.get(node).unwrap_or(&EMPTY)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.neighbours.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty()
    }

    /// Whether every node reaches every other one, using only nodes for which `keep` holds.
    pub fn connected_within(&self, keep: impl Fn(usize) -> bool) -> bool {
        let members: Vec<usize> = (0..self.len()).filter(|node| keep(*node)).collect();
        let Some(first) = members.first() else { return true };
        let mut seen = BTreeSet::from([*first]);
        let mut stack = vec![*first];
        while let Some(node) = stack.pop() {
            for next in self.neighbours(node) {
                if keep(*next) && seen.insert(*next) {
                    stack.push(*next);
                }
            }
        }
        seen.len() == members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_are_connected_symmetric_and_reach_the_degree() {
        for seed in 0..20 {
            let graph = Graph::random(60, 6, &mut SimRng::new(seed));
            assert!(graph.connected_within(|_| true), "seed {seed}");
            for node in 0..60 {
                assert!(graph.neighbours(node).len() >= 6, "seed {seed} node {node}");
                assert!(!graph.neighbours(node).contains(&node));
                for other in graph.neighbours(node) {
                    assert!(graph.neighbours(*other).contains(&node));
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_graph_and_tiny_graphs_work() {
        let a = Graph::random(30, 4, &mut SimRng::new(9));
        let b = Graph::random(30, 4, &mut SimRng::new(9));
        let c = Graph::random(30, 4, &mut SimRng::new(10));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(Graph::random(0, 4, &mut SimRng::new(1)).is_empty());
        assert!(Graph::random(1, 4, &mut SimRng::new(1)).neighbours(0).is_empty());
        let pair = Graph::random(2, 8, &mut SimRng::new(1));
        assert_eq!(pair.neighbours(0).len(), 1);
        assert!(pair.neighbours(7).is_empty());
    }

    #[test]
    fn connectivity_sees_a_cut() {
        let graph = Graph::random(10, 2, &mut SimRng::new(5));
        // Removing every node but two that are not neighbours disconnects them.
        let a = 0;
        let b = (1..10).find(|n| !graph.neighbours(a).contains(n)).unwrap();
        assert!(!graph.connected_within(|n| n == a || n == b));
    }
}

//! Exact top-k selection with a deterministic order.

use serde::{Deserialize, Serialize};

/// One search result: a gallery row and its score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Row of the gallery.
    pub index: u32,
    /// Similarity (dot product of the stored and the query vector).
    pub score: f32,
}

/// `a` ranks before `b`: higher score first, then lower index (a total order,
/// so results do not depend on how the gallery was split between threads).
#[inline]
fn better(a: Hit, b: Hit) -> bool {
    a.score > b.score || (a.score == b.score && a.index < b.index)
}

/// The best `k` hits seen so far, kept as a binary min-heap on rank (root = worst).
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    heap: Vec<Hit>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: Vec::with_capacity(k),
        }
    }

    /// The score a new hit must reach to enter (−∞ until full).
    #[inline]
    pub(crate) fn floor(&self) -> f32 {
        if self.k == 0 {
            f32::INFINITY
        } else if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap[0].score
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, hit: Hit) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(hit);
            let mut i = self.heap.len() - 1;
            while i > 0 {
                let p = (i - 1) / 2;
                if better(self.heap[p], self.heap[i]) {
                    self.heap.swap(p, i);
                    i = p;
                } else {
                    break;
                }
            }
        } else if better(hit, self.heap[0]) {
            self.heap[0] = hit;
            let n = self.heap.len();
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut worst = i;
                if l < n && better(self.heap[worst], self.heap[l]) {
                    worst = l;
                }
                if r < n && better(self.heap[worst], self.heap[r]) {
                    worst = r;
                }
                if worst == i {
                    break;
                }
                self.heap.swap(i, worst);
                i = worst;
            }
        }
    }

    /// Offers a hit if it can enter.
    #[inline]
    pub(crate) fn offer(&mut self, index: u32, score: f32) {
        if score >= self.floor() && self.k > 0 {
            self.push(Hit { index, score });
        }
    }

    pub(crate) fn merge(&mut self, other: TopK) {
        for h in other.heap {
            self.push(h);
        }
    }

    /// The hits, best first.
    pub(crate) fn into_sorted(mut self) -> Vec<Hit> {
        self.heap
            .sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        self.heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn keeps_the_best_k_with_ties_to_the_lower_index() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for k in [0usize, 1, 3, 10] {
            let scores: Vec<f32> = (0..500).map(|_| (rng.gen_range(0..50) as f32) / 10.0).collect();
            let mut a = TopK::new(k);
            let mut b = TopK::new(k);
            for (i, &s) in scores.iter().enumerate() {
                if i % 2 == 0 {
                    a.offer(i as u32, s)
                } else {
                    b.offer(i as u32, s)
                }
            }
            a.merge(b);
            let got = a.into_sorted();
            let mut want: Vec<Hit> = scores
                .iter()
                .enumerate()
                .map(|(i, &s)| Hit {
                    index: i as u32,
                    score: s,
                })
                .collect();
            want.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
            want.truncate(k);
            assert_eq!(got, want);
        }
    }
}

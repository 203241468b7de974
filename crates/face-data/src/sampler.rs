//! P×K identity batches: each batch holds `P` identities × `K` images, so every batch has
//! `P·K(K−1)/2` genuine and `K²·P(P−1)/2` impostor pairs — what the per-batch AUC of irAUC
//! needs (Hermans et al., "In Defense of the Triplet Loss", 2017, for the sampling scheme).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// P×K batch sampler over a list of identity labels.
///
/// Identities with fewer than `K` images are left out (they would need repeated images,
/// whose genuine pairs have cosine 1 and inflate the AUC); [`PkSampler::excluded`] counts them.
/// Each epoch shuffles the eligible identities, takes them `P` at a time (the incomplete
/// remainder is dropped) and draws `K` distinct images of each. Epoch `e` with seed `s` is
/// the same on every machine.
///
/// # Examples
/// ```
/// use face_data::PkSampler;
/// let labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3];
/// let sampler = PkSampler::new(&labels, 2, 3, 7).unwrap();
/// let batches = sampler.epoch(0);
/// assert_eq!(batches.len(), 1); // 3 eligible identities → one batch of 2
/// assert_eq!(batches[0].len(), 6);
/// assert_eq!(sampler.excluded(), 1); // identity 3 has 1 image
/// ```
#[derive(Debug, Clone)]
pub struct PkSampler {
    groups: Vec<Vec<usize>>,
    p: usize,
    k: usize,
    seed: u64,
    excluded: usize,
}

impl PkSampler {
    /// Builds the sampler from the identity label of every image.
    ///
    /// # Errors
    /// `p < 2` or `k < 2` (a batch needs both pair kinds), or fewer than `p` identities with
    /// at least `k` images.
    pub fn new(labels: &[u32], p: usize, k: usize, seed: u64) -> Result<Self> {
        if p < 2 || k < 2 {
            return Err(DataError::param(
                "p, k",
                format!("P = {p} and K = {k} must both be at least 2"),
            ));
        }
        let mut by_label: std::collections::BTreeMap<u32, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, &l) in labels.iter().enumerate() {
            by_label.entry(l).or_default().push(i);
        }
        let total = by_label.len();
        let groups: Vec<Vec<usize>> = by_label.into_values().filter(|g| g.len() >= k).collect();
        if groups.len() < p {
            return Err(DataError::NotEnough(format!(
                "{} of {total} identities have at least K = {k} images; P = {p} are needed",
                groups.len()
            )));
        }
        let excluded = total - groups.len();
        Ok(Self {
            groups,
            p,
            k,
            seed,
            excluded,
        })
    }

    /// Identities left out for having fewer than `K` images.
    pub fn excluded(&self) -> usize {
        self.excluded
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.groups.len() / self.p
    }

    /// The batches (image indices, identity-major: `K` images of one identity, then the next)
    /// of epoch `epoch`.
    pub fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut order: Vec<usize> = (0..self.groups.len()).collect();
        order.shuffle(&mut rng);
        order
            .chunks_exact(self.p)
            .map(|ids| {
                let mut batch = Vec::with_capacity(self.p * self.k);
                for &g in ids {
                    batch.extend(self.groups[g].choose_multiple(&mut rng, self.k).copied());
                }
                batch
            })
            .collect()
    }
}

//! Which examples go into each batch: a seeded ChaCha8 shuffle per epoch, read as one endless
//! stream, so every example is seen once per epoch and a seed gives the same batches every time.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// An endless stream of example indices, reshuffled at the start of each epoch.
pub struct BatchSampler {
    rng: ChaCha8Rng,
    order: Vec<usize>,
    next: usize,
}

impl BatchSampler {
    /// A sampler over `len` examples; `len` must be non-zero.
    pub fn new(len: usize, seed: u64) -> BatchSampler {
        assert!(len > 0, "a batch sampler needs at least one example");
        let mut sampler =
            BatchSampler { rng: ChaCha8Rng::seed_from_u64(seed), order: (0..len).collect(), next: 0 };
        sampler.order.shuffle(&mut sampler.rng);
        sampler
    }

    /// The next `size` indices; a batch that crosses an epoch end continues in the next epoch.
    pub fn next_batch(&mut self, size: usize) -> Vec<usize> {
        (0..size).map(|_| self.next_index()).collect()
    }

    fn next_index(&mut self) -> usize {
        if self.next == self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.next = 0;
        }
        self.next += 1;
        self.order[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_is_a_permutation() {
        let mut sampler = BatchSampler::new(7, 3);
        let stream: Vec<usize> = (0..5).flat_map(|_| sampler.next_batch(7)).collect();
        for epoch in stream.chunks(7) {
            let mut sorted = epoch.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..7).collect::<Vec<_>>());
        }
        // Reshuffled: not every epoch in the same order.
        assert!(stream.chunks(7).any(|e| e != &stream[..7]));
    }

    #[test]
    fn batches_cross_epoch_ends_without_losing_examples() {
        let mut a = BatchSampler::new(5, 9);
        let mut b = BatchSampler::new(5, 9);
        let by_threes: Vec<usize> = (0..5).flat_map(|_| a.next_batch(3)).collect();
        let by_fives: Vec<usize> = (0..3).flat_map(|_| b.next_batch(5)).collect();
        assert_eq!(by_threes, by_fives);
    }

    #[test]
    fn same_seed_same_batches_other_seed_other_order() {
        let draw = |seed| {
            let mut s = BatchSampler::new(20, seed);
            (0..4).flat_map(|_| s.next_batch(8)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}

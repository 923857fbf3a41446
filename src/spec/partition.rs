//! Which images each trial trains and validates on: the test images set aside first (never
//! trained on, never used to choose), then from the rest (the pool) a holdout drawn with the
//! trial's seed, one fold of a shared k-fold partition, or everything (a refit).
//!
//! With no test images the pool is the whole dataset, so holdout splits are exactly those of
//! `data::split::split_indices` on it.

use anyhow::Context;

use super::{HeldOut, TrialParams, Validation};
use crate::data::split::{kfold_repeated, split_indices, SplitIndices, Stratify};
use crate::data::Label;

/// The sweep's test images and its k-fold partitions, drawn once.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Dataset indices of the test images, ascending.
    test: Vec<usize>,
    /// Dataset indices of every other image, ascending.
    pool: Vec<usize>,
    pool_labels: Vec<Label>,
    /// Every repeat's folds, repeat-major, in pool positions.
    folds: Vec<SplitIndices>,
    stratify: Stratify,
}

impl Partition {
    pub fn new(labels: &[Label], validation: &Validation, stratify: Stratify) -> anyhow::Result<Partition> {
        let (test, pool) = match validation.test {
            Some(test) => {
                let split = split_indices(labels, &test.size, test.seed, stratify)
                    .context("validation.test: cannot draw the test images")?;
                (split.valid, split.train)
            }
            None => (Vec::new(), (0..labels.len()).collect()),
        };
        let pool_labels: Vec<Label> = pool.iter().map(|&i| labels[i]).collect();
        let folds = match validation.kfold {
            Some(k) => kfold_repeated(&pool_labels, k.folds, k.repeats, k.seed, stratify)
                .context("validation: cannot draw the folds")?,
            None => Vec::new(),
        };
        Ok(Partition { test, pool, pool_labels, folds, stratify })
    }

    pub fn test(&self) -> &[usize] {
        &self.test
    }

    pub fn pool(&self) -> &[usize] {
        &self.pool
    }

    /// The trial's split, in dataset indices (each part ascending).
    pub fn split(&self, params: &TrialParams) -> anyhow::Result<SplitIndices> {
        let in_pool = match params.held_out() {
            HeldOut::Images(valid) => split_indices(&self.pool_labels, &valid, params.seed, self.stratify)?,
            HeldOut::Fold(fold) => {
                let folds = fold.folds;
                let at = (fold.repeat - 1) * folds + (fold.fold - 1);
                self.folds.get(at).cloned().with_context(|| {
                    format!("fold {}/{folds} of repeat {} is not drawn", fold.fold, fold.repeat)
                })?
            }
            HeldOut::Nothing => SplitIndices { train: (0..self.pool.len()).collect(), valid: Vec::new() },
        };
        let map = |part: Vec<usize>| part.into_iter().map(|i| self.pool[i]).collect();
        Ok(SplitIndices { train: map(in_pool.train), valid: map(in_pool.valid) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::split::ValidSize;
    use crate::spec::validation::{Kfold, Scheme, TestSplit};
    use crate::spec::FoldIndex;

    fn labels(n: usize) -> Vec<Label> {
        (0..n).map(|i| if i % 3 == 0 { Label::Negative } else { Label::Positive }).collect()
    }

    fn params(text: &str) -> TrialParams {
        toml::from_str(&format!("seed = 3\n{text}\n[train]\nlearning_rate = 0.1\n")).unwrap()
    }

    #[test]
    fn without_test_images_holdout_is_the_plain_split() {
        let labels = labels(40);
        let partition = Partition::new(&labels, &Validation::default(), Stratify::No).unwrap();
        let split = partition.split(&params("valid = 10")).unwrap();
        assert_eq!(split, split_indices(&labels, &ValidSize::Count(10), 3, Stratify::No).unwrap());
        assert!(partition.test().is_empty());
    }

    #[test]
    fn test_images_are_in_no_trial_and_folds_cover_the_rest() {
        let labels = labels(40);
        let validation = Validation {
            scheme: Scheme::RepeatedKfold,
            kfold: Some(Kfold { folds: 4, repeats: 2, seed: 9 }),
            test: Some(TestSplit { size: ValidSize::Count(8), seed: 1 }),
        };
        let partition = Partition::new(&labels, &validation, Stratify::ByLabel).unwrap();
        let test = partition.test().to_vec();
        assert_eq!(test.len(), 8);
        for repeat in 1..=2 {
            let mut seen = vec![0; 40];
            for fold in 1..=4 {
                let mut p = params("");
                p.fold = Some(FoldIndex { repeat, fold, folds: 4 });
                let split = partition.split(&p).unwrap();
                assert_eq!(split.train.len() + split.valid.len(), 32);
                assert_eq!(split.valid.len(), 8);
                assert!(split.train.iter().chain(&split.valid).all(|i| !test.contains(i)));
                split.valid.iter().for_each(|&i| seen[i] += 1);
            }
            // Every non-test image is validated exactly once per repeat.
            let expected: Vec<usize> = (0..40).map(|i| usize::from(!test.contains(&i))).collect();
            assert_eq!(seen, expected);
        }
        // A refit trains on the whole pool.
        let refit = partition.split(&params("")).unwrap();
        assert_eq!((refit.train.len(), refit.valid.len()), (32, 0));
    }
}

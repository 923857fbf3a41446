//! Seeded train/valid splits and repeated k-fold, optionally stratified by answer.
//!
//! Every function takes the seed explicitly and draws from its own `ChaCha8Rng`, so a seed gives the
//! same split on every machine and in every release of `rand`'s algorithms we pin.
//!
//! Stratified splits take from each answer class in proportion to its size; the per-class counts of
//! a train/valid split are the largest-remainder rounding of `valid × n_class / n` (ties go to the
//! positive class), so they always add up to the requested validation size.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::error::DataError;
use super::Label;

/// How many examples go to validation: a count (`10`) or a fraction of the dataset (`0.1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValidSize {
    Count(usize),
    /// Strictly between 0 and 1; `fraction × n` is rounded to nearest, halves up (96 × 0.1 → 10).
    Fraction(f64),
}

/// Slack when rounding `fraction × n`: decimal fractions are not exact in binary, and 0.29 × 50 should
/// round like the 14.5 the user meant, not like the 14.499999999999998 that f64 computes.
const ROUNDING_SLACK: f64 = 1e-9;

impl ValidSize {
    /// The number of validation examples out of `n`; an error if none would be left for validation
    /// or for training.
    pub fn resolve(&self, n: usize) -> Result<usize, DataError> {
        let count = match *self {
            ValidSize::Count(count) => count,
            ValidSize::Fraction(f) if f > 0.0 && f < 1.0 => {
                (f * n as f64 + 0.5 + ROUNDING_SLACK).floor() as usize
            }
            ValidSize::Fraction(f) => return Err(DataError::InvalidValidSize { text: f.to_string() }),
        };
        if count == 0 {
            Err(DataError::EmptyValid { valid: self.to_string(), n })
        } else if count >= n {
            Err(DataError::ValidTakesAll { valid: self.to_string(), n, count })
        } else {
            Ok(count)
        }
    }
}

impl FromStr for ValidSize {
    type Err = DataError;

    /// `"10"` is a count; anything with a decimal point or exponent is a fraction in (0, 1).
    fn from_str(text: &str) -> Result<Self, DataError> {
        let invalid = || DataError::InvalidValidSize { text: text.to_string() };
        let trimmed = text.trim();
        if let Ok(count) = trimmed.parse::<usize>() {
            return Ok(ValidSize::Count(count));
        }
        match trimmed.parse::<f64>() {
            Ok(f) if f > 0.0 && f < 1.0 => Ok(ValidSize::Fraction(f)),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for ValidSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidSize::Count(count) => write!(f, "{count}"),
            ValidSize::Fraction(fraction) => write!(f, "{fraction}"),
        }
    }
}

impl serde::Serialize for ValidSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            ValidSize::Count(count) => serializer.serialize_u64(count as u64),
            ValidSize::Fraction(fraction) => serializer.serialize_f64(fraction),
        }
    }
}

/// Accepts an integer (a count), a float (a fraction) or a string holding either.
impl<'de> serde::Deserialize<'de> for ValidSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ValidSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count (10) or a fraction between 0 and 1 (0.1)")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ValidSize, E> {
                usize::try_from(v).map(ValidSize::Count).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ValidSize, E> {
                usize::try_from(v)
                    .map(ValidSize::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ValidSize, E> {
                if v > 0.0 && v < 1.0 {
                    Ok(ValidSize::Fraction(v))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ValidSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Whether a split keeps the answer proportions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stratify {
    No,
    ByLabel,
}

/// One split: indices into the example list, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
}

impl SplitIndices {
    /// Everything not in `valid` is training data.
    fn from_valid(n: usize, mut valid: Vec<usize>) -> SplitIndices {
        valid.sort_unstable();
        let mut in_valid = vec![false; n];
        for &i in &valid {
            in_valid[i] = true;
        }
        let train = (0..n).filter(|&i| !in_valid[i]).collect();
        SplitIndices { train, valid }
    }
}

/// Shuffle with `seed` and put `valid` examples aside for validation.
pub fn split_indices(
    labels: &[Label],
    valid: &ValidSize,
    seed: u64,
    stratify: Stratify,
) -> Result<SplitIndices, DataError> {
    let n = labels.len();
    let valid_count = valid.resolve(n)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let chosen = match stratify {
        Stratify::No => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            order.truncate(valid_count);
            order
        }
        Stratify::ByLabel => {
            let classes = by_label(labels);
            let quotas = proportional_quotas(&classes, valid_count, n);
            let mut chosen = Vec::with_capacity(valid_count);
            for (mut members, quota) in classes.into_values().zip(quotas) {
                members.shuffle(&mut rng);
                chosen.extend_from_slice(&members[..quota]);
            }
            chosen
        }
    };
    Ok(SplitIndices::from_valid(n, chosen))
}

/// `repeats` independent k-fold partitions, `k` splits each; within one repeat every example is in
/// exactly one validation fold. Fold sizes differ by at most one; stratified folds also hold each
/// answer class as evenly as possible.
pub fn kfold_repeated(
    labels: &[Label],
    k: usize,
    repeats: usize,
    seed: u64,
    stratify: Stratify,
) -> Result<Vec<SplitIndices>, DataError> {
    let n = labels.len();
    if k < 2 || k > n || repeats == 0 {
        return Err(DataError::InvalidFolds { k, n, repeats });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut splits = Vec::with_capacity(k * repeats);
    for _ in 0..repeats {
        // Dealing a class-by-class shuffled order round-robin spreads every class over the folds.
        let order: Vec<usize> = match stratify {
            Stratify::No => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut rng);
                order
            }
            Stratify::ByLabel => by_label(labels)
                .into_values()
                .flat_map(|mut members| {
                    members.shuffle(&mut rng);
                    members
                })
                .collect(),
        };
        for fold in 0..k {
            let valid = order.iter().skip(fold).step_by(k).copied().collect();
            splits.push(SplitIndices::from_valid(n, valid));
        }
    }
    Ok(splits)
}

/// Example indices per label, labels in order (positive first), indices ascending.
fn by_label(labels: &[Label]) -> BTreeMap<Label, Vec<usize>> {
    let mut classes: BTreeMap<Label, Vec<usize>> = BTreeMap::new();
    for (i, &label) in labels.iter().enumerate() {
        classes.entry(label).or_default().push(i);
    }
    classes
}

/// Largest-remainder apportionment of `total` among the classes in proportion to their sizes.
/// Each quota is at most its class size because `total < n`.
fn proportional_quotas(classes: &BTreeMap<Label, Vec<usize>>, total: usize, n: usize) -> Vec<usize> {
    let sizes: Vec<usize> = classes.values().map(Vec::len).collect();
    let mut quotas: Vec<usize> = sizes.iter().map(|&size| total * size / n).collect();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    // Stable sort: equal remainders keep class order.
    by_remainder.sort_by_key(|&c| std::cmp::Reverse(total * sizes[c] % n));
    let missing = total - quotas.iter().sum::<usize>();
    for &c in by_remainder.iter().take(missing) {
        quotas[c] += 1;
    }
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;
    use Label::{Negative as N, Positive as P};

    fn mixed(positives: usize, negatives: usize) -> Vec<Label> {
        // Interleaved so that index order and class order differ.
        let mut out = Vec::new();
        let (mut p, mut q) = (positives, negatives);
        while p + q > 0 {
            if p > 0 {
                out.push(P);
                p -= 1;
            }
            if q > 0 {
                out.push(N);
                q -= 1;
            }
        }
        out
    }

    fn count(labels: &[Label], indices: &[usize], label: Label) -> usize {
        indices.iter().filter(|&&i| labels[i] == label).count()
    }

    #[test]
    fn fraction_rounds_to_nearest_halves_up() {
        // The users' 86:10 split of 96 images.
        assert_eq!(ValidSize::Fraction(0.1).resolve(96).unwrap(), 10);
        // 0.25 × 10 = 2.5 → 3 (halves up); 0.29 × 50 = 14.5 in decimal → 15, although f64 gives
        // 14.499999999999998 (checked in Python: 0.29 * 50).
        assert_eq!(ValidSize::Fraction(0.25).resolve(10).unwrap(), 3);
        assert_eq!(ValidSize::Fraction(0.29).resolve(50).unwrap(), 15);
        // 0.1 × 94 = 9.4 → 9.
        assert_eq!(ValidSize::Fraction(0.1).resolve(94).unwrap(), 9);
        assert_eq!(ValidSize::Count(10).resolve(96).unwrap(), 10);
    }

    #[test]
    fn resolve_refuses_empty_or_total_validation() {
        assert!(matches!(ValidSize::Fraction(0.01).resolve(40), Err(DataError::EmptyValid { n: 40, .. })));
        assert!(matches!(ValidSize::Count(0).resolve(5), Err(DataError::EmptyValid { .. })));
        assert!(matches!(ValidSize::Count(5).resolve(5), Err(DataError::ValidTakesAll { count: 5, .. })));
        assert!(matches!(ValidSize::Fraction(0.99).resolve(10), Err(DataError::ValidTakesAll { .. })));
    }

    #[test]
    fn valid_size_parses_and_displays() {
        assert_eq!("10".parse::<ValidSize>().unwrap(), ValidSize::Count(10));
        assert_eq!("0.1".parse::<ValidSize>().unwrap(), ValidSize::Fraction(0.1));
        for bad in ["", "-1", "1.5", "0.0", "1.0", "abc", "NaN"] {
            assert!(bad.parse::<ValidSize>().is_err(), "{bad:?} should be refused");
        }
        assert_eq!(ValidSize::Count(10).to_string(), "10");
        assert_eq!(ValidSize::Fraction(0.1).to_string(), "0.1");
    }

    #[test]
    fn valid_size_deserializes_from_int_or_float() {
        #[derive(serde::Deserialize)]
        struct Spec {
            valid: ValidSize,
        }
        let parse = |text: &str| toml::from_str::<Spec>(text).map(|s| s.valid);
        assert_eq!(parse("valid = 10").unwrap(), ValidSize::Count(10));
        assert_eq!(parse("valid = 0.1").unwrap(), ValidSize::Fraction(0.1));
        assert_eq!(parse("valid = \"0.2\"").unwrap(), ValidSize::Fraction(0.2));
        assert!(parse("valid = -3").is_err());
        assert!(parse("valid = 1.5").is_err());
        assert_eq!(serde_json::to_string(&ValidSize::Fraction(0.1)).unwrap(), "0.1");
        assert_eq!(serde_json::to_string(&ValidSize::Count(7)).unwrap(), "7");
    }

    #[test]
    fn split_is_a_partition_and_deterministic_for_a_seed() {
        let labels = mixed(60, 36);
        for stratify in [Stratify::No, Stratify::ByLabel] {
            let a = split_indices(&labels, &ValidSize::Fraction(0.1), 7, stratify).unwrap();
            let b = split_indices(&labels, &ValidSize::Fraction(0.1), 7, stratify).unwrap();
            assert_eq!(a, b);
            assert_eq!((a.train.len(), a.valid.len()), (86, 10));
            assert!(a.valid.windows(2).all(|w| w[0] < w[1]));
            assert!(a.train.windows(2).all(|w| w[0] < w[1]));
            let mut all: Vec<usize> = a.train.iter().chain(&a.valid).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..96).collect::<Vec<_>>());
        }
    }

    #[test]
    fn different_seeds_give_different_splits() {
        let labels = mixed(50, 50);
        let splits: Vec<_> = (0..5)
            .map(|seed| split_indices(&labels, &ValidSize::Count(10), seed, Stratify::No).unwrap().valid)
            .collect();
        for i in 0..splits.len() {
            for j in i + 1..splits.len() {
                assert_ne!(splits[i], splits[j], "seeds {i} and {j}");
            }
        }
    }

    #[test]
    fn stratified_split_keeps_proportions() {
        // 60 yes / 36 no, 10 for validation: 10 × 60/96 = 6.25 → 6 yes, 10 × 36/96 = 3.75 → 4 no.
        let labels = mixed(60, 36);
        for seed in 0..20 {
            let split = split_indices(&labels, &ValidSize::Count(10), seed, Stratify::ByLabel).unwrap();
            assert_eq!(count(&labels, &split.valid, P), 6);
            assert_eq!(count(&labels, &split.valid, N), 4);
        }
        // Equal remainders (5 × 1/2 = 2.5 each): the tie goes to the positive class.
        let labels = mixed(10, 10);
        let split = split_indices(&labels, &ValidSize::Count(5), 3, Stratify::ByLabel).unwrap();
        assert_eq!((count(&labels, &split.valid, P), count(&labels, &split.valid, N)), (3, 2));
    }

    #[test]
    fn kfold_covers_every_example_once_per_repeat() {
        let labels = mixed(13, 8);
        for stratify in [Stratify::No, Stratify::ByLabel] {
            let splits = kfold_repeated(&labels, 4, 3, 11, stratify).unwrap();
            assert_eq!(splits.len(), 12);
            for repeat in splits.chunks(4) {
                let mut seen = vec![0; labels.len()];
                for split in repeat {
                    // 21 examples in 4 folds: sizes 6, 5, 5, 5.
                    assert!(split.valid.len() == 5 || split.valid.len() == 6);
                    assert_eq!(split.train.len() + split.valid.len(), 21);
                    assert!(split.train.iter().all(|i| !split.valid.contains(i)));
                    for &i in &split.valid {
                        seen[i] += 1;
                    }
                }
                assert_eq!(seen, vec![1; labels.len()]);
            }
            // Repeats are reshuffled, not copies.
            assert_ne!(splits[0].valid, splits[4].valid);
            assert_eq!(splits, kfold_repeated(&labels, 4, 3, 11, stratify).unwrap());
        }
    }

    #[test]
    fn stratified_kfold_spreads_each_class() {
        // 13 yes over 4 folds: 3 or 4 per fold; 8 no: 2 per fold.
        let labels = mixed(13, 8);
        for split in kfold_repeated(&labels, 4, 2, 5, Stratify::ByLabel).unwrap() {
            let yes = count(&labels, &split.valid, P);
            assert!(yes == 3 || yes == 4, "{yes} positives in a fold");
            assert_eq!(count(&labels, &split.valid, N), 2);
        }
    }

    #[test]
    fn kfold_refuses_bad_k() {
        let labels = mixed(2, 2);
        assert!(kfold_repeated(&labels, 1, 1, 0, Stratify::No).is_err());
        assert!(kfold_repeated(&labels, 5, 1, 0, Stratify::No).is_err());
        assert!(kfold_repeated(&labels, 2, 0, 0, Stratify::No).is_err());
    }
}

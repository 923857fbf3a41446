//! The `[validation]` table: how each trial's held-out images are chosen, and the test images
//! that no trial ever sees.
//!
//! ```toml
//! [validation]
//! scheme = "kfold"       # "holdout" (default: the `valid` axis), "kfold" or "repeated_kfold"
//! folds = 5              # k-fold: every image is validated once per repeat
//! repeats = 2            # repeated_kfold only: k-fold partitions drawn afresh this many times
//! seed = 0               # seeds the partitions, shared by every config (paired comparisons)
//! test = 16              # optional: images drawn first, never trained on or used to choose
//! test_seed = 0
//! ```
//!
//! Holdout draws each trial's validation images from its seed (`valid` images), as before. In
//! k-fold a trial is (config, seed, repeat, fold): it trains on the other folds and is judged on
//! its own, so each config predicts every non-test image once per repeat and seed. The test
//! images are taken out before anything else; they only measure the final model.

use serde::{Deserialize, Serialize};

use crate::data::split::ValidSize;

/// How trials hold out their validation images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Each trial holds out `valid` images drawn with its seed (the `valid` axis).
    #[default]
    Holdout,
    /// One k-fold partition: a trial per fold.
    Kfold,
    /// `repeats` k-fold partitions, each drawn afresh.
    RepeatedKfold,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Holdout => "holdout",
            Scheme::Kfold => "kfold",
            Scheme::RepeatedKfold => "repeated_kfold",
        }
    }
}

/// The default number of folds.
pub const DEFAULT_FOLDS: usize = 5;

/// The `[validation]` table as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSpec {
    #[serde(default)]
    pub scheme: Scheme,
    /// k-fold: the number of folds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
    /// repeated_kfold: the number of partitions (at least 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<usize>,
    /// Seeds the k-fold partitions (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Images (a count or a fraction of the dataset) set aside before everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<ValidSize>,
    /// Seeds the test draw (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_seed: Option<u64>,
}

/// Which fold of which partition a k-fold trial holds out (both 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldIndex {
    pub repeat: usize,
    pub fold: usize,
    /// The number of folds of the partition.
    pub folds: usize,
}

/// The test images: how many and drawn with which seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TestSplit {
    pub size: ValidSize,
    pub seed: u64,
}

/// A checked `[validation]` table; the default is holdout without test images.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Validation {
    pub scheme: Scheme,
    /// k-fold: folds and repeats; holdout: `None`.
    pub kfold: Option<Kfold>,
    pub test: Option<TestSplit>,
}

/// The k-fold partitions of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Kfold {
    pub folds: usize,
    pub repeats: usize,
    pub seed: u64,
}

/// What of `[validation]` is part of every trial's identity: the test draw (it changes the
/// pool the trials split) and the partition seed. Adding repeats keeps the earlier ones (each
/// partition is drawn in turn from the seed), so `repeats` is not part of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ValidationIdentity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<TestSplit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fold_seed: Option<u64>,
}

impl ValidationIdentity {
    pub fn is_empty(&self) -> bool {
        self.test.is_none() && self.fold_seed.is_none()
    }
}

impl Validation {
    pub fn identity(&self) -> ValidationIdentity {
        ValidationIdentity { test: self.test, fold_seed: self.kfold.map(|k| k.seed) }
    }

    /// The fold indices every config is run on, in run order (repeat, then fold).
    pub fn folds(&self) -> Vec<FoldIndex> {
        let Some(k) = self.kfold else { return Vec::new() };
        (1..=k.repeats)
            .flat_map(|repeat| (1..=k.folds).map(move |fold| FoldIndex { repeat, fold, folds: k.folds }))
            .collect()
    }
}

/// A `[validation]` value that makes no sense: the key and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidValidation {
    pub key: &'static str,
    pub message: String,
}

impl ValidationSpec {
    /// Check the table: keys that belong to another scheme are errors, not silently ignored.
    pub fn check(&self) -> Result<Validation, InvalidValidation> {
        let invalid = |key, message: String| Err(InvalidValidation { key, message });
        let kfold = match self.scheme {
            Scheme::Holdout => {
                for (key, set) in [
                    ("folds", self.folds.is_some()),
                    ("repeats", self.repeats.is_some()),
                    ("seed", self.seed.is_some()),
                ] {
                    if set {
                        return invalid(
                            key,
                            "only applies to scheme = \"kfold\" or \"repeated_kfold\" (the scheme is \
                             \"holdout\", where the valid axis sets the validation images)"
                                .to_string(),
                        );
                    }
                }
                None
            }
            Scheme::Kfold | Scheme::RepeatedKfold => {
                let folds = self.folds.unwrap_or(DEFAULT_FOLDS);
                if folds < 2 {
                    return invalid("folds", format!("{folds}: k-fold needs at least 2 folds"));
                }
                let repeats =
                    match (self.scheme, self.repeats) {
                        (Scheme::Kfold, None) => 1,
                        (Scheme::Kfold, Some(_)) => {
                            return invalid(
                                "repeats",
                                "only applies to scheme = \"repeated_kfold\" (kfold is one partition)".into(),
                            )
                        }
                        (_, Some(repeats)) if repeats >= 2 => repeats,
                        (_, Some(repeats)) => {
                            return invalid("repeats", format!("{repeats}: repeated_kfold needs at least 2"))
                        }
                        (_, None) => return invalid(
                            "repeats",
                            "missing: repeated_kfold needs repeats = N (N ≥ 2), or use scheme = \"kfold\""
                                .into(),
                        ),
                    };
                Some(Kfold { folds, repeats, seed: self.seed.unwrap_or(0) })
            }
        };
        if self.test.is_none() && self.test_seed.is_some() {
            return invalid("test_seed", "only applies with test = N (the number of test images)".into());
        }
        let test = self.test.map(|size| TestSplit { size, seed: self.test_seed.unwrap_or(0) });
        Ok(Validation { scheme: self.scheme, kfold, test })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Validation, InvalidValidation> {
        toml::from_str::<ValidationSpec>(text).unwrap().check()
    }

    #[test]
    fn defaults_to_holdout_without_test() {
        assert_eq!(check("").unwrap(), Validation::default());
        assert!(Validation::default().identity().is_empty());
        assert!(Validation::default().folds().is_empty());
    }

    #[test]
    fn kfold_lists_each_fold_of_each_repeat() {
        let v = check("scheme = \"repeated_kfold\"\nfolds = 3\nrepeats = 2\nseed = 4\n").unwrap();
        assert_eq!(v.kfold, Some(Kfold { folds: 3, repeats: 2, seed: 4 }));
        let folds: Vec<(usize, usize)> = v.folds().iter().map(|f| (f.repeat, f.fold)).collect();
        assert_eq!(folds, [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]);
        let v = check("scheme = \"kfold\"\n").unwrap();
        assert_eq!(v.kfold, Some(Kfold { folds: DEFAULT_FOLDS, repeats: 1, seed: 0 }));
        assert_eq!(v.identity().fold_seed, Some(0));
    }

    #[test]
    fn keys_of_another_scheme_are_errors() {
        assert_eq!(check("folds = 5\n").unwrap_err().key, "folds");
        assert_eq!(check("scheme = \"kfold\"\nrepeats = 2\n").unwrap_err().key, "repeats");
        assert_eq!(check("scheme = \"repeated_kfold\"\n").unwrap_err().key, "repeats");
        assert_eq!(check("scheme = \"repeated_kfold\"\nrepeats = 1\n").unwrap_err().key, "repeats");
        assert_eq!(check("scheme = \"kfold\"\nfolds = 1\n").unwrap_err().key, "folds");
        assert_eq!(check("test_seed = 3\n").unwrap_err().key, "test_seed");
        let v = check("test = 0.2\ntest_seed = 3\n").unwrap();
        assert_eq!(v.test, Some(TestSplit { size: ValidSize::Fraction(0.2), seed: 3 }));
    }
}

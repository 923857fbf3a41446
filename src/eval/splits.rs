//! The parts of a dataset a trial is judged on (train, valid, all) and a confusion count for each.
//!
//! `all` is the whole dataset: every example is in exactly one of train and valid and is scored
//! once, so its counts are the sum of the other two.

use std::fmt;
use std::ops::Add;

use super::Confusion;

/// A part of the dataset that is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    Train,
    Valid,
    All,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::All];

    /// The name used in CSV headers, specs (`valid.precision`) and logs.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::All => "all",
        }
    }

    pub fn from_name(name: &str) -> Option<Split> {
        Split::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Add for Confusion {
    type Output = Confusion;

    fn add(self, other: Confusion) -> Confusion {
        Confusion {
            tp: self.tp + other.tp,
            tn: self.tn + other.tn,
            fp: self.fp + other.fp,
            fn_: self.fn_ + other.fn_,
        }
    }
}

/// Confusion counts of one model on the train and valid parts of a split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfusions {
    pub train: Confusion,
    pub valid: Confusion,
}

impl SplitConfusions {
    pub fn get(&self, split: Split) -> Confusion {
        match split {
            Split::Train => self.train,
            Split::Valid => self.valid,
            Split::All => self.train + self.valid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_the_sum_of_train_and_valid() {
        let scores = SplitConfusions {
            train: Confusion { tp: 1, tn: 2, fp: 3, fn_: 4 },
            valid: Confusion { tp: 10, tn: 20, fp: 30, fn_: 40 },
        };
        assert_eq!(scores.get(Split::All), Confusion { tp: 11, tn: 22, fp: 33, fn_: 44 });
        assert_eq!(scores.get(Split::Valid).tp, 10);
    }

    #[test]
    fn names_round_trip() {
        for split in Split::ALL {
            assert_eq!(Split::from_name(split.name()), Some(split));
        }
        assert_eq!(Split::from_name("test"), None);
    }
}

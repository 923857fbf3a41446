//! Helpers for the unit tests of `eval`.

/// Within `rel` of `expected`, relatively.
#[track_caller]
pub fn close(got: f64, expected: f64, rel: f64) {
    assert!((got - expected).abs() <= rel * expected.abs(), "got {got}, expected {expected}");
}

//! CLI-level tests: one binary, topic modules below, a small harness in `util`.

mod util;
// PaliGemma: scoring, masks, gradients, checkpoint loading, parity with the Python reference.
mod model;

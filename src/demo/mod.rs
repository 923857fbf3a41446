//! The bundled demo dataset: 96 synthetic "web ad" images in the users' JSONL format, drawn from a
//! seed, so `sweeps/demo/` can be regenerated (and checked) byte for byte.
//!
//! Its shape is the users' dataset: 54 acceptable ads (answer `yes`) and 42 violating ones (`no`);
//! 45 PNG, 44 JPEG and 7 animated GIF, with both classes in every format. A violation is visual and
//! always saturated red: a starburst badge or a striked price (see `marks`). In three of the four
//! violating GIFs the violation shows in some frames only, so the GIF frame policy matters.
//!
//! One `ChaCha8Rng` seeded from the seed drives everything (no global RNG); drawing uses plain
//! arithmetic (`draw`) and the encoders run with fixed settings (`encode`), so the bytes do not
//! depend on the machine.

mod draw;
mod encode;
mod layout;
mod marks;

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use encode::DemoFormat;
pub use marks::ViolationKind;

/// The seed that made the committed `sweeps/demo/`.
pub const DEFAULT_SEED: u64 = 1;

/// How many images of each class each format gets: the users' dataset shape (54/42, 45/44/7).
const PLAN: [(DemoFormat, AdClass, usize); 6] = [
    (DemoFormat::Png, AdClass::Acceptable, 25),
    (DemoFormat::Png, AdClass::Violating, 20),
    (DemoFormat::Jpeg, AdClass::Acceptable, 26),
    (DemoFormat::Jpeg, AdClass::Violating, 18),
    (DemoFormat::Gif, AdClass::Acceptable, 3),
    (DemoFormat::Gif, AdClass::Violating, 4),
];

/// Which frames show the violation, for the violating GIFs in file order (one pattern each):
/// taking only the first, middle or last frame misses the violation in some of them.
const GIF_VIOLATION_PATTERNS: [FramePattern; 4] =
    [FramePattern::OnlyLast, FramePattern::OnlyMiddle, FramePattern::Every, FramePattern::Odd];

/// Frame counts of animated GIFs.
const GIF_FRAMES: std::ops::RangeInclusive<usize> = 3..=6;

/// Whether an ad is acceptable or violates the ad policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdClass {
    Acceptable,
    Violating,
}

impl AdClass {
    pub const ALL: [AdClass; 2] = [AdClass::Acceptable, AdClass::Violating];

    /// The expected answer (the JSONL `suffix`): is this ad acceptable?
    pub fn answer(self) -> &'static str {
        match self {
            AdClass::Acceptable => "yes",
            AdClass::Violating => "no",
        }
    }

    /// The file name tag, as in the users' data (`OK_…`, `NG_…`); the model never sees names.
    fn file_tag(self) -> &'static str {
        match self {
            AdClass::Acceptable => "OK",
            AdClass::Violating => "NG",
        }
    }
}

/// Which frames of an animated ad show its violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FramePattern {
    Every,
    OnlyLast,
    /// Only frame `n / 2` (0-based) of an odd frame count, so "middle" is unambiguous.
    OnlyMiddle,
    /// Frames 1, 3, 5…: never the first.
    Odd,
}

impl FramePattern {
    fn shows(self, frame: usize, frames: usize) -> bool {
        match self {
            FramePattern::Every => true,
            FramePattern::OnlyLast => frame + 1 == frames,
            FramePattern::OnlyMiddle => frame == frames / 2,
            FramePattern::Odd => frame % 2 == 1,
        }
    }
}

/// One generated image, as listed in `data.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoImage {
    /// Path relative to the dataset folder (the JSONL `image` value), e.g. `images/OK_001.png`.
    pub file: String,
    pub class: AdClass,
    pub format: DemoFormat,
    pub width: u32,
    pub height: u32,
    /// Number of frames: 1 for PNG and JPEG, 3 to 6 for GIF.
    pub frames: usize,
    pub violation: Option<ViolationKind>,
    /// 0-based frames that show the violation (empty for acceptable ads).
    pub violation_frames: Vec<usize>,
    /// Size of the file in bytes.
    pub file_bytes: usize,
}

/// What `generate_demo_dataset` wrote.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub seed: u64,
    /// The `data.jsonl` written.
    pub data: PathBuf,
    /// Every image, in `data.jsonl` order.
    pub images: Vec<DemoImage>,
}

impl DemoSummary {
    /// How many images have this format (any class with `None`) and class (any format with `None`).
    pub fn count(&self, format: Option<DemoFormat>, class: Option<AdClass>) -> usize {
        self.images
            .iter()
            .filter(|img| format.is_none_or(|f| img.format == f) && class.is_none_or(|c| img.class == c))
            .count()
    }

    /// Total size of the image files in bytes.
    pub fn total_bytes(&self) -> usize {
        self.images.iter().map(|img| img.file_bytes).sum()
    }
}

/// One line of `data.jsonl`, fields in the users' order.
#[derive(serde::Serialize)]
struct JsonlLine<'a> {
    prefix: &'a str,
    suffix: &'a str,
    image: &'a str,
}

/// Write the demo dataset into `out`: `out/data.jsonl` and `out/images/*`, each file replaced
/// atomically. Files already in `out/images` that the dataset does not list are left alone, with a
/// warning.
pub fn generate_demo_dataset(out: &Path, seed: u64) -> anyhow::Result<DemoSummary> {
    let files = render_dataset(seed)?;
    let images_dir = out.join("images");
    std::fs::create_dir_all(&images_dir).with_context(|| format!("creating {}", images_dir.display()))?;
    let mut jsonl = String::new();
    for (image, bytes) in &files {
        write_atomic(&out.join(&image.file), bytes)?;
        let line = JsonlLine { prefix: "", suffix: image.class.answer(), image: &image.file };
        jsonl.push_str(&serde_json::to_string(&line).context("serialising a data.jsonl line")?);
        jsonl.push('\n');
    }
    let data = out.join("data.jsonl");
    write_atomic(&data, jsonl.as_bytes())?;
    warn_about_strays(&images_dir, &files)?;
    Ok(DemoSummary { seed, data, images: files.into_iter().map(|(image, _)| image).collect() })
}

/// Draw and encode every image of the dataset, in `data.jsonl` order.
fn render_dataset(seed: u64) -> anyhow::Result<Vec<(DemoImage, Vec<u8>)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut slots: Vec<(DemoFormat, AdClass)> =
        PLAN.iter().flat_map(|&(format, class, n)| std::iter::repeat_n((format, class), n)).collect();
    slots.shuffle(&mut rng);
    let mut gif_patterns = GIF_VIOLATION_PATTERNS.into_iter();
    slots
        .into_iter()
        .enumerate()
        .map(|(i, (format, class))| {
            let pattern = match (format, class) {
                (_, AdClass::Acceptable) => None,
                (DemoFormat::Gif, AdClass::Violating) => Some(
                    gif_patterns
                        .next()
                        .expect("PLAN lists one violating GIF per GIF_VIOLATION_PATTERNS entry"),
                ),
                (_, AdClass::Violating) => Some(FramePattern::Every),
            };
            let file = format!("images/{}_{:03}.{}", class.file_tag(), i + 1, format.extension());
            render_image(&mut rng, file, format, class, pattern)
        })
        .collect()
}

fn render_image(
    rng: &mut ChaCha8Rng,
    file: String,
    format: DemoFormat,
    class: AdClass,
    pattern: Option<FramePattern>,
) -> anyhow::Result<(DemoImage, Vec<u8>)> {
    let violation = pattern.map(|_| random_violation_kind(rng));
    let frames = match (format, pattern) {
        (DemoFormat::Gif, Some(FramePattern::OnlyMiddle)) => {
            if rng.random_bool(0.5) {
                3
            } else {
                5
            }
        }
        (DemoFormat::Gif, _) => rng.random_range(GIF_FRAMES),
        _ => 1,
    };
    let scene = layout::AdScene::random(rng, violation);
    let violation_frames: Vec<usize> = match pattern {
        Some(p) => (0..frames).filter(|&f| p.shows(f, frames)).collect(),
        None => Vec::new(),
    };
    let pixels: Vec<_> = (0..frames).map(|f| scene.render(f, violation_frames.contains(&f))).collect();
    let bytes = encode::encode(format, &pixels).with_context(|| file.clone())?;
    let image = DemoImage {
        file,
        class,
        format,
        width: scene.width,
        height: scene.height,
        frames,
        violation,
        violation_frames,
        file_bytes: bytes.len(),
    };
    Ok((image, bytes))
}

/// Burst 45 %, striked price 40 %, both 15 %.
fn random_violation_kind(rng: &mut ChaCha8Rng) -> ViolationKind {
    match rng.random_range(0..20) {
        0..9 => ViolationKind::Burst,
        9..17 => ViolationKind::StrikedPrice,
        _ => ViolationKind::Both,
    }
}

/// Write `bytes` to a temp file beside `path`, then rename it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Warn about files in `images_dir` that the dataset does not list (left from another seed?).
fn warn_about_strays(images_dir: &Path, files: &[(DemoImage, Vec<u8>)]) -> anyhow::Result<()> {
    let listed: std::collections::HashSet<&str> =
        files.iter().filter_map(|(image, _)| image.file.strip_prefix("images/")).collect();
    let entries =
        std::fs::read_dir(images_dir).with_context(|| format!("listing {}", images_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", images_dir.display()))?;
        let name = entry.file_name();
        if !listed.contains(name.to_string_lossy().as_ref()) {
            crate::logging::warn!(
                "{}: not part of the demo dataset; delete it if it is stale",
                entry.path().display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_the_users_dataset_shape() {
        let total = |keep: &dyn Fn(DemoFormat, AdClass) -> bool| -> usize {
            PLAN.iter().filter(|&&(f, c, _)| keep(f, c)).map(|&(_, _, n)| n).sum()
        };
        assert_eq!(total(&|_, c| c == AdClass::Acceptable), 54);
        assert_eq!(total(&|_, c| c == AdClass::Violating), 42);
        assert_eq!(total(&|f, _| f == DemoFormat::Png), 45);
        assert_eq!(total(&|f, _| f == DemoFormat::Jpeg), 44);
        assert_eq!(total(&|f, _| f == DemoFormat::Gif), 7);
        assert_eq!(
            total(&|f, c| f == DemoFormat::Gif && c == AdClass::Violating),
            GIF_VIOLATION_PATTERNS.len()
        );
    }

    #[test]
    fn frame_patterns_pick_the_frames_they_name() {
        let shown = |p: FramePattern, n: usize| (0..n).filter(|&f| p.shows(f, n)).collect::<Vec<_>>();
        assert_eq!(shown(FramePattern::Every, 3), [0, 1, 2]);
        assert_eq!(shown(FramePattern::OnlyLast, 4), [3]);
        assert_eq!(shown(FramePattern::OnlyMiddle, 5), [2]);
        assert_eq!(shown(FramePattern::Odd, 6), [1, 3, 5]);
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
        let a = render_dataset(7).unwrap();
        let b = render_dataset(7).unwrap();
        let c = render_dataset(8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn violating_gifs_hide_the_violation_in_some_frames() {
        let files = render_dataset(DEFAULT_SEED).unwrap();
        let partial = files
            .iter()
            .filter(|(img, _)| img.format == DemoFormat::Gif && img.class == AdClass::Violating)
            .filter(|(img, _)| !img.violation_frames.is_empty() && img.violation_frames.len() < img.frames)
            .count();
        assert_eq!(partial, 3);
    }
}

//! A model's own preprocessing. A Hugging Face folder carries its image-processor settings in
//! `preprocessor_config.json` (the hub's PaliGemma folders, an image processor's own
//! `save_pretrained`) or in the `image_processor` part of `processor_config.json` (what
//! transformers 5's `PaliGemmaProcessor.save_pretrained` writes). Where both are, the second
//! wins, as in transformers 5.24 (`AutoProcessor.from_pretrained`, tried with both files).
//! Keys absent take `SiglipImageProcessor`'s defaults (bicubic, 224×224, rescale 1/255, mean and
//! std 0.5). A folder with neither file, a big_vision `.npz` and a built-in model get big_vision's
//! recipe (bilinear with antialias, [−1, 1]). Settings gacha does not implement are refused,
//! naming the file and key.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{Map, Value};

use crate::data::{Normalize, Preprocessing, Resize};

/// The image processor's own file.
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";
/// The processor's file; its `image_processor` key holds the image processor's settings.
pub const PROCESSOR_FILE: &str = "processor_config.json";
const IMAGE_PROCESSOR_KEY: &str = "image_processor";

/// PIL's resampling filter numbers (`PIL.Image.Resampling`) that gacha implements.
const PIL_BILINEAR: u64 = 2;
const PIL_BICUBIC: u64 = 3;

/// A model's own preprocessing, and where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPreprocessing {
    pub own: Preprocessing,
    pub origin: Origin,
}

/// Where a model's preprocessing comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// `preprocessor_config.json`, or `processor_config.json` (its `image_processor` key).
    File(PathBuf),
    /// A checkpoint folder with neither file.
    NoFile(PathBuf),
    /// big_vision's recipe, for a big_vision `.npz` or a built-in model.
    BigVision,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) if path.ends_with(PROCESSOR_FILE) => {
                write!(f, "{} ({IMAGE_PROCESSOR_KEY})", path.display())
            }
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::NoFile(dir) => write!(
                f,
                "big_vision's recipe (no {PREPROCESSOR_FILE} or {PROCESSOR_FILE} in {})",
                dir.display()
            ),
            Origin::BigVision => f.write_str("big_vision's recipe"),
        }
    }
}

impl ModelPreprocessing {
    /// big_vision's recipe at `size`.
    pub fn big_vision(size: usize) -> ModelPreprocessing {
        ModelPreprocessing { own: Preprocessing::big_vision(size), origin: Origin::BigVision }
    }
}

/// The preprocessing of the checkpoint folder `dir`, whose model takes `size`×`size` images.
pub fn read_dir(dir: &Path, size: usize) -> anyhow::Result<ModelPreprocessing> {
    let processor = dir.join(PROCESSOR_FILE);
    if processor.is_file() {
        match read_object(&processor)?.remove(IMAGE_PROCESSOR_KEY) {
            Some(Value::Object(settings)) => return from_settings(processor, &settings, size),
            Some(_) => bail!("{}: {IMAGE_PROCESSOR_KEY} is not an object", processor.display()),
            None => {}
        }
    }
    let preprocessor = dir.join(PREPROCESSOR_FILE);
    if preprocessor.is_file() {
        let settings = read_object(&preprocessor)?;
        return from_settings(preprocessor, &settings, size);
    }
    Ok(ModelPreprocessing {
        origin: Origin::NoFile(dir.to_path_buf()),
        ..ModelPreprocessing::big_vision(size)
    })
}

fn from_settings(
    path: PathBuf,
    settings: &Map<String, Value>,
    size: usize,
) -> anyhow::Result<ModelPreprocessing> {
    let own = settings_to_preprocessing(settings, size).with_context(|| format!("{}", path.display()))?;
    Ok(ModelPreprocessing { own, origin: Origin::File(path) })
}

fn read_object(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    match serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))? {
        Value::Object(map) => Ok(map),
        _ => bail!("{}: expected a JSON object", path.display()),
    }
}

/// The image-processor keys → `Preprocessing` (errors name the key; the caller adds the file).
fn settings_to_preprocessing(s: &Map<String, Value>, size: usize) -> anyhow::Result<Preprocessing> {
    let flag = |key: &str, default: bool| match s.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => bail!("{key} is {other}, expected true or false"),
    };
    for key in ["do_center_crop", "do_pad"] {
        if flag(key, false)? {
            bail!(
                "{key} is true: gacha does not crop or pad (it resizes to the model's size); set it to false"
            );
        }
    }
    if !flag("do_resize", true)? {
        bail!("do_resize is false: gacha always resizes to the model's size {size}×{size}; set it to true");
    }
    let resize = match s.get("resample") {
        None | Some(Value::Null) => Resize::Bicubic,
        Some(value) => match value.as_u64() {
            Some(PIL_BILINEAR) => Resize::Bilinear,
            Some(PIL_BICUBIC) => Resize::Bicubic,
            _ => bail!(
                "resample is {value}: gacha implements {PIL_BILINEAR} (bilinear) and {PIL_BICUBIC} (bicubic); \
                 set one of those"
            ),
        },
    };
    if let Some(value) = s.get("size").filter(|v| !v.is_null()) {
        let side = |key: &str| value.get(key).and_then(Value::as_u64);
        match (side("height"), side("width")) {
            (Some(h), Some(w)) if h as usize == size && w as usize == size => {}
            _ => bail!(
                "size is {value}: the model takes {size}×{size} images (vision_config.image_size), so \
                 gacha needs {{\"height\": {size}, \"width\": {size}}}"
            ),
        }
    }
    let rescale_factor = if flag("do_rescale", true)? {
        number(s, "rescale_factor")?.unwrap_or(Normalize::SIGLIP.rescale_factor)
    } else {
        1.0
    };
    let (image_mean, image_std) = if flag("do_normalize", true)? {
        (
            channels(s, "image_mean")?.unwrap_or(Normalize::SIGLIP.image_mean),
            channels(s, "image_std")?.unwrap_or(Normalize::SIGLIP.image_std),
        )
    } else {
        ([0.0; 3], [1.0; 3])
    };
    if image_std.contains(&0.0) {
        bail!("image_std is {image_std:?}: a zero would divide by zero");
    }
    Ok(Preprocessing { resize, size, normalize: Normalize { rescale_factor, image_mean, image_std } })
}

/// A finite number at `key`, if present and not null.
fn number(s: &Map<String, Value>, key: &str) -> anyhow::Result<Option<f64>> {
    match s.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_f64().filter(|v| v.is_finite()) {
            Some(v) => Ok(Some(v)),
            None => bail!("{key} is {value}, expected a number"),
        },
    }
}

/// Three channel values at `key` (a list of 3, or one number for all), as f32.
fn channels(s: &Map<String, Value>, key: &str) -> anyhow::Result<Option<[f32; 3]>> {
    let value = match s.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => value,
    };
    let finite = |v: &Value| v.as_f64().filter(|v| v.is_finite()).map(|v| v as f32);
    let parsed = match value {
        Value::Array(items) if items.len() == 3 => {
            items.iter().map(finite).collect::<Option<Vec<f32>>>().map(|v| [v[0], v[1], v[2]])
        }
        other => finite(other).map(|v| [v; 3]),
    };
    match parsed {
        Some(values) => Ok(Some(values)),
        None => bail!("{key} is {value}, expected 3 numbers (one per RGB channel)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    /// The hub's paligemma-3b-pt-224 `preprocessor_config.json`, less keys gacha does not read.
    const HUB: &str = r#"{"do_convert_rgb": null, "do_normalize": true, "do_rescale": true,
        "do_resize": true, "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
        "image_seq_length": 256, "image_std": [0.5, 0.5, 0.5], "processor_class": "PaliGemmaProcessor",
        "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"height": 224, "width": 224}}"#;

    #[test]
    fn hub_preprocessor_config_is_bicubic_siglip() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), PREPROCESSOR_FILE, HUB);
        let got = read_dir(dir.path(), 224).unwrap();
        let want = Preprocessing { resize: Resize::Bicubic, ..Preprocessing::big_vision(224) };
        assert_eq!(got.own, want);
        assert_eq!(got.origin, Origin::File(dir.path().join(PREPROCESSOR_FILE)));
    }

    #[test]
    fn processor_config_image_processor_part_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            PROCESSOR_FILE,
            r#"{"image_seq_length": 4, "image_processor": {"resample": 2, "do_normalize": false,
                "rescale_factor": 0.5}, "processor_class": "PaliGemmaProcessor"}"#,
        );
        let got = read_dir(dir.path(), 28).unwrap();
        let normalize = Normalize { rescale_factor: 0.5, image_mean: [0.0; 3], image_std: [1.0; 3] };
        assert_eq!(got.own, Preprocessing { resize: Resize::Bilinear, size: 28, normalize });
        assert!(
            got.origin.to_string().ends_with("processor_config.json (image_processor)"),
            "{}",
            got.origin
        );
    }

    #[test]
    fn processor_config_wins_over_preprocessor_config() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), PREPROCESSOR_FILE, HUB);
        write(dir.path(), PROCESSOR_FILE, r#"{"image_processor": {"resample": 2}}"#);
        assert_eq!(read_dir(dir.path(), 224).unwrap().own.resize, Resize::Bilinear);
        // Without an image_processor part, preprocessor_config.json is read.
        write(dir.path(), PROCESSOR_FILE, r#"{"processor_class": "PaliGemmaProcessor"}"#);
        assert_eq!(read_dir(dir.path(), 224).unwrap().own.resize, Resize::Bicubic);
    }

    #[test]
    fn no_file_is_big_vision() {
        let dir = tempfile::tempdir().unwrap();
        let got = read_dir(dir.path(), 14).unwrap();
        assert_eq!(got.own, Preprocessing::big_vision(14));
        assert!(got.origin.to_string().contains("no preprocessor_config.json"), "{}", got.origin);
    }

    #[test]
    fn refused_settings_name_the_file_and_key() {
        let cases = [
            (r#"{"resample": 1}"#, "resample is 1: gacha implements 2 (bilinear) and 3 (bicubic)"),
            (r#"{"size": {"shortest_edge": 224}}"#, "the model takes 224×224 images"),
            (r#"{"size": {"height": 448, "width": 448}}"#, "size is {\"height\":448,\"width\":448}"),
            (r#"{"do_resize": false}"#, "do_resize is false"),
            (r#"{"do_center_crop": true}"#, "do_center_crop is true"),
            (r#"{"image_mean": [0.5, 0.5]}"#, "image_mean is [0.5,0.5], expected 3 numbers"),
            (r#"{"image_std": 0}"#, "image_std is [0.0, 0.0, 0.0]: a zero"),
            (r#"{"rescale_factor": "1/255"}"#, "rescale_factor is \"1/255\", expected a number"),
        ];
        for (text, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), PREPROCESSOR_FILE, text);
            let err = format!("{:#}", read_dir(dir.path(), 224).unwrap_err());
            assert!(err.contains(PREPROCESSOR_FILE) && err.contains(want), "{text}: {err}");
        }
    }
}

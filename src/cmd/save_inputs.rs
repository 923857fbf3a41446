//! `gacha check --save-inputs DIR`: each image's first model frame as decoded, before the resize
//! (EXIF orientation applied, an animation's frame composited, alpha kept), written as a lossless
//! PNG `DIR/<line>-<stem>.decoded.png`, to see what the model sees or to compare decoders. DIR
//! must be new or empty, so that no file of the user's is ever replaced.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use image::{DynamicImage, ImageFormat};

use crate::data::Example;

/// The folder the decoded inputs go to, checked to be new or empty.
pub struct InputsDir {
    dir: PathBuf,
}

impl InputsDir {
    /// Create `dir` (and its parents), or take it if it is an empty folder.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let what = || format!("--save-inputs {}", dir.display());
        if dir.exists() {
            let mut entries =
                std::fs::read_dir(dir).with_context(|| format!("{}: not a readable folder", what()))?;
            if entries.next().is_some() {
                bail!(
                    "{}: the folder is not empty; name a new or empty folder (nothing there is replaced)",
                    what()
                );
            }
        } else {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the folder", what()))?;
        }
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// Write `image`, the decoded input of `example`; a file already there is refused, not replaced.
    pub fn save(&self, example: &Example, image: &DynamicImage) -> anyhow::Result<()> {
        let stem = example.image_path.file_stem().unwrap_or_default().to_string_lossy();
        let path = self.dir.join(format!("{}-{stem}.decoded.png", example.line));
        if path.symlink_metadata().is_ok() {
            bail!("{}: already exists (line {} of the dataset); not replaced", path.display(), example.line);
        }
        let mut png = Cursor::new(Vec::new());
        image
            .write_to(&mut png, ImageFormat::Png)
            .with_context(|| format!("{}: cannot encode", path.display()))?;
        crate::fsutil::write_atomic(&path, png.get_ref())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

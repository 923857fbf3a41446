//! Input files opened only after they are checked: a regular file (after following symbolic
//! links), no larger than the caller's cap, opened without blocking. So a dataset line naming
//! `/dev/zero`, a FIFO or a 3 GB file is refused at once with what it is, instead of being read
//! (or hashed) for ever or in full first (issue 29, case 10).
//!
//! The type is read from the opened file (`fstat`), not from the path, and the file is opened
//! with `O_NONBLOCK`, which a FIFO without a writer would otherwise wait on at `open`; on a
//! regular file that flag changes nothing. Reads stop at the cap even if the file grows after
//! the check.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("file not found")]
    Missing,
    #[error("is a folder, not a file")]
    Folder,
    /// `kind` says what it is instead ("a character device", "a named pipe", …).
    #[error("is {kind}, not a regular file")]
    NotRegular { kind: &'static str },
    #[error("a file of {bytes} bytes, over the cap of {cap} bytes")]
    TooLarge { bytes: u64, cap: u64 },
    #[error("cannot read: {0}")]
    Unreadable(io::Error),
}

impl InputError {
    fn from_io(err: io::Error) -> InputError {
        match err.kind() {
            io::ErrorKind::NotFound => InputError::Missing,
            _ => InputError::Unreadable(err),
        }
    }
}

/// What a file that is not a regular file is, in words.
pub fn kind_of(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else if meta.is_file() {
        "a regular file"
    } else {
        "an unknown kind of file"
    }
}

/// `path` opened for reading once it is known to be a regular file of at most `cap` bytes, with
/// its size.
pub fn open_regular(path: &Path, cap: u64) -> Result<(File, u64), InputError> {
    // What the path leads to (symbolic links followed), looked at before opening: a folder or a
    // device is refused without opening it.
    let meta = std::fs::metadata(path).map_err(InputError::from_io)?;
    if meta.is_dir() {
        return Err(InputError::Folder);
    }
    if !meta.is_file() {
        return Err(InputError::NotRegular { kind: kind_of(&meta) });
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(InputError::from_io)?;
    // The file opened may not be the one looked at (replaced in between): check it again.
    let meta = file.metadata().map_err(InputError::Unreadable)?;
    if meta.is_dir() {
        return Err(InputError::Folder);
    }
    if !meta.is_file() {
        return Err(InputError::NotRegular { kind: kind_of(&meta) });
    }
    if meta.len() > cap {
        return Err(InputError::TooLarge { bytes: meta.len(), cap });
    }
    Ok((file, meta.len()))
}

/// The whole of a regular file of at most `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_regular(path, cap)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes).map_err(InputError::Unreadable)?;
    if bytes.len() as u64 > cap {
        return Err(InputError::TooLarge { bytes: bytes.len() as u64, cap });
    }
    Ok(bytes)
}

/// `read_regular` as UTF-8 text.
pub fn read_regular_text(path: &Path, cap: u64) -> Result<String, InputError> {
    let bytes = read_regular(path, cap)?;
    String::from_utf8(bytes)
        .map_err(|err| InputError::Unreadable(io::Error::new(io::ErrorKind::InvalidData, err.utf8_error())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_others_refused_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(read_regular(&file, 3).unwrap(), b"abc");
        assert!(matches!(read_regular(&file, 2), Err(InputError::TooLarge { bytes: 3, cap: 2 })));
        assert!(matches!(read_regular(&dir.path().join("none"), 9), Err(InputError::Missing)));
        assert_eq!(read_regular(dir.path(), 9).unwrap_err().to_string(), "is a folder, not a file");
        #[cfg(unix)]
        {
            // /dev/zero never ends and a FIFO without a writer never answers: both are refused
            // before a byte is read, the link to /dev/zero by what it leads to.
            let link = dir.path().join("zero.png");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            assert_eq!(
                read_regular(&link, 9).unwrap_err().to_string(),
                "is a character device, not a regular file"
            );
            let fifo = dir.path().join("fifo.png");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                assert_eq!(
                    read_regular(&fifo, 9).unwrap_err().to_string(),
                    "is a named pipe (FIFO), not a regular file"
                );
            }
        }
    }
}

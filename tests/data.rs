//! `gacha check` on datasets and `gacha split`: every bad input of issue 2 point 4 exits 2 with a
//! message naming the line or the image; good datasets in every format pass; splits are seeded.

use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::{DynamicImage, Frame, ImageBuffer, ImageFormat, Luma, Rgb, Rgba, RgbaImage};
use sha2::Digest;

use crate::util::{assert_exit, fixtures, run, texts, TestDir};

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encode test image");
    bytes.into_inner()
}

fn png_rgba() -> Vec<u8> {
    encode(
        DynamicImage::ImageRgba8(RgbaImage::from_pixel(40, 30, Rgba([200, 10, 10, 128]))),
        ImageFormat::Png,
    )
}

fn png_grey() -> Vec<u8> {
    encode(DynamicImage::ImageLuma8(ImageBuffer::from_pixel(8, 12, Luma([77u8]))), ImageFormat::Png)
}

fn png_16bit() -> Vec<u8> {
    let image = ImageBuffer::from_pixel(5, 5, Rgb([65535u16, 0, 30000]));
    encode(DynamicImage::ImageRgb16(image), ImageFormat::Png)
}

fn jpeg() -> Vec<u8> {
    let image = ImageBuffer::from_fn(64, 48, |x, y| Rgb([x as u8 * 4, y as u8 * 5, 90]));
    encode(DynamicImage::ImageRgb8(image), ImageFormat::Jpeg)
}

/// A 3-frame 16×16 GIF: red, green, blue.
fn gif_3_frames() -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut bytes);
        for color in [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]] {
            encoder
                .encode_frame(Frame::new(RgbaImage::from_pixel(16, 16, Rgba(color))))
                .expect("encode frame");
        }
    }
    bytes
}

/// CRC-32 (ISO-HDLC, as PNG uses) of `bytes`, bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG chunk: length, type, data, CRC of type and data.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut typed = kind.to_vec();
    typed.extend_from_slice(data);
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(&typed);
    chunk.extend_from_slice(&crc32(&typed).to_be_bytes());
    chunk
}

/// A well-formed PNG whose header claims 100000×100000 RGB pixels (30 GB decoded); its IDAT is
/// an empty zlib stream, since the point is to refuse before decompressing anything.
fn png_bomb() -> Vec<u8> {
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    // 8-bit, RGB, deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    // zlib header 78 01, one final stored block of length 0, Adler-32 of nothing (1).
    let empty_zlib = [0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01];
    [
        b"\x89PNG\r\n\x1a\n".to_vec(),
        png_chunk(b"IHDR", &ihdr),
        png_chunk(b"IDAT", &empty_zlib),
        png_chunk(b"IEND", b""),
    ]
    .concat()
}

/// A folder with good images of every kind under `images/`.
fn image_dir() -> TestDir {
    let dir = TestDir::new();
    dir.write("images/rgba.png", png_rgba());
    dir.write("images/grey.png", png_grey());
    dir.write("images/deep.png", png_16bit());
    dir.write("images/photo.jpg", jpeg());
    dir.write("images/anim.gif", gif_3_frames());
    dir.write("images/cmyk.jpg", std::fs::read(fixtures().join("images/cmyk.jpg")).expect("cmyk fixture"));
    dir
}

fn line(suffix: &str, image: &str) -> String {
    format!("{{\"prefix\": \"is it ok?\", \"suffix\": \"{suffix}\", \"image\": \"{image}\"}}\n")
}

/// Run `gacha check data.jsonl` on `contents` written in `dir`; expect exit 2 and return stderr.
fn check_fails(dir: &TestDir, contents: impl AsRef<[u8]>) -> String {
    dir.write("data.jsonl", contents);
    let out = run(dir.gacha().args(["check", "data.jsonl"]));
    assert_exit(&out, 2);
    texts(&out).1
}

#[track_caller]
fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected to find\n  {needle}\nin\n{text}");
}

#[test]
fn check_summarises_a_dataset_mixing_formats() {
    let dir = image_dir();
    // CRLF, blank lines and extra keys are all fine.
    let contents = [
        line("yes", "images/rgba.png").replace('\n', "\r\n"),
        "\n".to_string(),
        line("no", "images/grey.png"),
        "   \r\n".to_string(),
        "{\"suffix\": \"no\", \"image\": \"images/deep.png\", \"source\": \"cam 2\", \"score\": 0.5}\n"
            .to_string(),
        line("yes", "images/photo.jpg"),
        line("yes", "images/anim.gif"),
        line("no", "./images/cmyk.jpg"),
    ]
    .concat();
    dir.write("data.jsonl", contents);
    let out = run(dir.gacha().args(["check", "data.jsonl"]));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    assert_eq!(
        stdout,
        "data.jsonl: ok\n\
         examples: 6 (yes 3, no 3; positive answer: yes)\n\
         formats: PNG 3, JPEG 2, GIF 1\n\
         animated images: 1 (images/anim.gif: 3 frames)\n\
         model inputs: 8 (frames: all)\n\
         EXIF orientation: 0 images rotated or flipped\n\
         image sizes: smallest 5×5, largest 64×48 (widths 5–64, heights 5–48); checked at 224×224\n"
    );
    // `--gif-frames` is the old name of `--frames`, kept working.
    for flag in ["--frames", "--gif-frames"] {
        let out = run(dir.gacha().args(["check", "data.jsonl", flag, "middle"]));
        assert_exit(&out, 0);
        assert_contains(&texts(&out).0, "model inputs: 6 (frames: middle)");
    }
}

/// `jpeg()` with the orientation tag `tag` in an EXIF block (little-endian TIFF, one entry).
fn jpeg_with_orientation(tag: u16) -> Vec<u8> {
    use image::ImageEncoder;
    let mut exif = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
    exif.extend_from_slice(&tag.to_le_bytes());
    exif.extend_from_slice(&[0; 6]);
    let image = ImageBuffer::from_fn(64, 48, |x, y| Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut bytes);
    encoder.set_exif_metadata(exif).expect("EXIF accepted");
    encoder.write_image(image.as_raw(), 64, 48, image::ExtendedColorType::Rgb8).expect("encode JPEG");
    bytes
}

/// `jpeg()` whose scan is cut in half and closed with an end-of-image marker: libjpeg warns
/// "premature end of data segment"; the lenient decoder fills the rest in grey.
fn jpeg_cut_scan() -> Vec<u8> {
    let bytes = jpeg();
    let sos = bytes.windows(2).position(|w| w == [0xff, 0xda]).expect("a scan");
    let mut cut = bytes[..sos + (bytes.len() - sos) / 2].to_vec();
    cut.extend_from_slice(&[0xff, 0xd9]);
    cut
}

#[test]
fn check_counts_exif_rotations_and_refuses_damaged_jpegs_unless_lenient() {
    let dir = image_dir();
    dir.write("images/turned.jpg", jpeg_with_orientation(6));
    dir.write("images/flipped.jpg", jpeg_with_orientation(2));
    dir.write("images/cut.jpg", jpeg_cut_scan());
    let good =
        [line("yes", "images/photo.jpg"), line("no", "images/turned.jpg"), line("yes", "images/flipped.jpg")];
    dir.write("data.jsonl", good.concat());
    let out = run(dir.gacha().args(["check", "data.jsonl"]));
    assert_exit(&out, 0);
    // Tag 6 turns 64×48 into 48×64.
    assert_contains(&texts(&out).0, "EXIF orientation: 2 images rotated or flipped\n");
    assert_contains(
        &texts(&out).0,
        "image sizes: smallest 64×48, largest 64×48 (widths 48–64, heights 48–64)",
    );
    let out = run(dir.gacha().args(["check", "data.jsonl", "--exif-orientation", "ignore"]));
    assert_exit(&out, 0);
    assert_contains(
        &texts(&out).0,
        "EXIF orientation: ignored (2 images are tagged as rotated or flipped)\n",
    );
    assert_contains(&texts(&out).0, "(widths 64–64, heights 48–48)");

    let stderr = check_fails(&dir, [good.concat(), line("no", "images/cut.jpg")].concat());
    assert_contains(&stderr, "data.jsonl: 1 problem\n");
    assert_contains(
        &stderr,
        "data.jsonl:4: images/cut.jpg: JPEG coding error: scan 1: premature end of data in MCU ",
    );
    let out = run(dir.gacha().args(["check", "data.jsonl", "--lenient"]));
    assert_exit(&out, 0);
    assert_contains(
        &texts(&out).0,
        "JPEG coding errors, decoded past as training does (--lenient): 1 (images/cut.jpg: scan 1: premature end",
    );
}

#[test]
fn custom_answer_words() {
    let dir = image_dir();
    dir.write("data.jsonl", [line("ok", "images/grey.png"), line("ng", "images/photo.jpg")].concat());
    let out = run(dir.gacha().args(["check", "data.jsonl", "--answers", "ok,ng"]));
    assert_exit(&out, 0);
    assert_contains(&texts(&out).0, "examples: 2 (ok 1, ng 1; positive answer: ok)");
    dir.write("data.jsonl", line("yes", "images/grey.png"));
    let out = run(dir.gacha().args(["check", "data.jsonl", "--answers", "ok,ng"]));
    assert_exit(&out, 2);
    assert_contains(&texts(&out).1, "data.jsonl:1: unknown answer \"yes\" (expected ok or ng)");
}

#[test]
fn malformed_json() {
    // The line is 44 characters long; serde_json reports EOF at its last one.
    let stderr = check_fails(&image_dir(), "{\"suffix\": \"yes\", \"image\": \"images/grey.png\"\n");
    assert_contains(&stderr, "data.jsonl:1: malformed JSON at column 44: EOF while parsing an object");
}

#[test]
fn line_not_an_object() {
    let dir = image_dir();
    let stderr = check_fails(&dir, [line("yes", "images/grey.png"), "\"just a string\"\n".into()].concat());
    assert_contains(&stderr, "data.jsonl:2: expected a JSON object, found a string");
}

#[test]
fn missing_key() {
    let stderr = check_fails(&image_dir(), "{\"prefix\": \"\", \"suffix\": \"yes\"}\n");
    assert_contains(&stderr, "data.jsonl:1: missing key \"image\"");
}

#[test]
fn wrong_type() {
    let stderr = check_fails(&image_dir(), "{\"suffix\": true, \"image\": \"images/grey.png\"}\n");
    assert_contains(&stderr, "data.jsonl:1: \"suffix\" must be a string, found a boolean");
}

#[test]
fn unknown_answer_word() {
    let stderr = check_fails(&image_dir(), line("maybe", "images/grey.png"));
    assert_contains(&stderr, "data.jsonl:1: unknown answer \"maybe\" (expected yes or no)");
}

#[test]
fn missing_image() {
    let stderr = check_fails(&image_dir(), line("yes", "images/gone.png"));
    assert_contains(&stderr, "data.jsonl:1: images/gone.png: file not found");
}

#[test]
fn zero_byte_image() {
    let dir = image_dir();
    dir.write("images/empty.png", b"");
    let stderr = check_fails(&dir, line("yes", "images/empty.png"));
    assert_contains(&stderr, "data.jsonl:1: images/empty.png: empty file (0 bytes)");
}

#[test]
fn truncated_images() {
    let dir = image_dir();
    let png = png_rgba();
    dir.write("images/cut.png", &png[..png.len() / 2]);
    let jpg = jpeg();
    dir.write("images/cut.jpg", &jpg[..jpg.len() - 2]);
    // The last 10 bytes are the trailer and the end of frame 3's image data.
    let gif = gif_3_frames();
    dir.write("images/cut.gif", &gif[..gif.len() - 10]);
    let lines = [line("yes", "images/cut.png"), line("yes", "images/cut.jpg"), line("no", "images/cut.gif")];
    let stderr = check_fails(&dir, lines.concat());
    assert_contains(&stderr, "data.jsonl:1: images/cut.png: truncated (the file ends early)");
    assert_contains(&stderr, "data.jsonl:2: images/cut.jpg: truncated (the file ends early)");
    assert_contains(&stderr, "data.jsonl:3: images/cut.gif: frame 3: truncated (the file ends early)");
}

#[test]
fn file_that_is_not_an_image() {
    let dir = image_dir();
    dir.write("images/notes.png", "these are notes, not pixels\n");
    let stderr = check_fails(&dir, line("yes", "images/notes.png"));
    assert_contains(
        &stderr,
        "data.jsonl:1: images/notes.png: not a PNG, JPEG, GIF, WebP, BMP or TIFF image (unrecognised content starting with \
         bytes 74 68 65 73 65 20 61 72)",
    );
}

#[test]
fn folder_as_image() {
    let stderr = check_fails(&image_dir(), line("yes", "images"));
    assert_contains(&stderr, "data.jsonl:1: images: is a folder, not an image file");
}

#[test]
fn path_escaping_with_dot_dot_is_refused_unless_allowed() {
    let dir = image_dir();
    dir.write("sub/data.jsonl", line("yes", "../images/grey.png"));
    let out = run(dir.gacha().args(["check", "sub/data.jsonl"]));
    assert_exit(&out, 2);
    assert_contains(
        &texts(&out).1,
        "sub/data.jsonl:1: image path \"../images/grey.png\" leaves the dataset's folder",
    );
    let out = run(dir.gacha().args(["check", "sub/data.jsonl", "--allow-outside-paths"]));
    assert_exit(&out, 0);
}

#[test]
fn absolute_path_is_refused() {
    let dir = image_dir();
    let absolute = dir.join("images/grey.png");
    let stderr = check_fails(&dir, line("yes", absolute.to_str().expect("utf-8 temp path")));
    assert_contains(&stderr, "data.jsonl:1: image path");
    assert_contains(
        &stderr,
        "is absolute; write it relative to the dataset's folder (allow it with --allow-outside-paths",
    );
}

#[test]
fn decompression_bomb_is_refused_before_decoding() {
    let dir = image_dir();
    dir.write("images/bomb.png", png_bomb());
    let stderr = check_fails(&dir, line("yes", "images/bomb.png"));
    assert_contains(
        &stderr,
        "data.jsonl:1: images/bomb.png: 100000×100000 = 10000000000 pixels exceeds the cap of 50000000 pixels \
         (decompression-bomb guard)",
    );
}

#[test]
fn invalid_utf8() {
    let mut contents = line("yes", "images/grey.png").into_bytes();
    contents.extend_from_slice(b"{\"suffix\": \"no\", \"image\": \"images/gr\xe9y.png\"}\n");
    let stderr = check_fails(&image_dir(), contents);
    // The 0xe9 byte is the 37th of line 2.
    assert_contains(&stderr, "data.jsonl:2: invalid UTF-8 at byte 37 of the line");
}

#[test]
fn empty_dataset() {
    let dir = image_dir();
    let stderr = check_fails(&dir, "");
    assert_contains(&stderr, "data.jsonl: no examples");
    let stderr = check_fails(&dir, "\r\n\n  \n");
    assert_contains(&stderr, "data.jsonl: no examples");
}

#[test]
fn check_lists_every_problem_in_line_order() {
    let dir = image_dir();
    dir.write("images/empty.gif", b"");
    let lines = [
        line("yes", "images/grey.png"),
        line("yes", "images/empty.gif"),
        "not json\n".to_string(),
        line("perhaps", "images/grey.png"),
        line("no", "images/photo.jpg"),
    ];
    let stderr = check_fails(&dir, lines.concat());
    // serde_json reads "n" as the start of null and fails at the "o" in column 2.
    assert_eq!(
        stderr,
        "checking 3 images at 224×224\n\
         gacha: error: data.jsonl: 3 problems\n  \
         data.jsonl:2: images/empty.gif: empty file (0 bytes)\n  \
         data.jsonl:3: malformed JSON at column 2: expected ident\n  \
         data.jsonl:4: unknown answer \"perhaps\" (expected yes or no)\n"
    );
}

#[test]
fn extension_mismatch_is_mentioned() {
    let dir = image_dir();
    dir.write("images/really-a-jpeg.png", jpeg());
    dir.write("data.jsonl", line("yes", "images/really-a-jpeg.png"));
    let out = run(dir.gacha().args(["check", "data.jsonl"]));
    assert_exit(&out, 0);
    assert_contains(
        &texts(&out).1,
        "images/really-a-jpeg.png: content is JPEG, not PNG as the extension says",
    );
    assert_contains(&texts(&out).0, "formats: JPEG 1");
}

/// A spec over `data.jsonl` with the tiny built-in model (image 56) and 2 × 2 × 3 trials.
const SPEC: &str = "name = \"s\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
    gif_frames = \"middle\"\n[sweep]\nseeds = [1, 2]\nvalid = [2, 0.5]\nlearning_rate = [0.1, 0.01, 0.001]\n";

#[test]
fn check_of_a_sweep_spec_counts_trials_and_checks_model_and_images() {
    let dir = image_dir();
    let images = ["rgba.png", "grey.png", "photo.jpg", "anim.gif"];
    let lines: Vec<String> =
        images.iter().enumerate().map(|(i, f)| line(["yes", "no"][i % 2], &format!("images/{f}"))).collect();
    dir.write("data.jsonl", lines.concat());
    dir.write("s.toml", SPEC);
    let out = run(dir.gacha().args(["check", "s.toml"]));
    assert_exit(&out, 0);
    let (stdout, stderr) = texts(&out);
    assert!(stdout.starts_with("s.toml: 12 trials (2 × 2 × 3)\n"), "{stdout}");
    assert_contains(&stdout, "  learning_rate  3 value(s), sets train.learning_rate (line 10)\n");
    assert_contains(&stdout, "validation images of 4: 2 → 2, 0.5 → 2\n");
    assert_contains(&stdout, "model builtin:tiny@0: config ok (image 56, patch 7: 64 image tokens");
    assert_contains(&stdout, "model resolved to: built-in config tiny with random weights (seed 0)\n");
    assert_contains(&stdout, "model inputs: 4 (frames: middle)");
    assert_contains(&stdout, "checked at 56×56");
    assert_contains(&stderr, "gacha: warning: valid = 2 holds out 2 images (< 30)");
    // The dataset's digest: `sha256sum data.jsonl images/rgba.png … | sha256sum`, by hand.
    let sha256 =
        |bytes: &[u8]| -> String { sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect() };
    let mut listed = format!("{}  data.jsonl\n", sha256(&std::fs::read(dir.join("data.jsonl")).unwrap()));
    for image in images {
        let bytes = std::fs::read(dir.join(&format!("images/{image}"))).unwrap();
        listed.push_str(&format!("{}  images/{image}\n", sha256(&bytes)));
    }
    assert_contains(
        &stdout,
        &format!(
            "trial ids hold: dataset sha256 {} (the JSONL and every image it names), model by its name \
             and seed\n",
            &sha256(listed.as_bytes())[..12]
        ),
    );

    // The spec key `frames` is the new name of `gif_frames`; both read the same.
    dir.write("s.toml", SPEC.replace("gif_frames", "frames"));
    let renamed = run(dir.gacha().args(["check", "s.toml"]));
    assert_exit(&renamed, 0);
    assert_eq!(texts(&renamed).0, stdout);

    // A broken image is found (every image is decoded), naming its line.
    dir.write("images/grey.png", b"not a png");
    let out = run(dir.gacha().args(["check", "s.toml"]));
    assert_exit(&out, 2);
    assert_contains(&texts(&out).1, "data.jsonl:2");
    // An unknown built-in model is an error at its line.
    dir.write("s.toml", SPEC.replace("builtin:tiny", "builtin:huge"));
    let out = run(dir.gacha().args(["check", "s.toml"]));
    assert_exit(&out, 2);
    assert_contains(&texts(&out).1, "s.toml: line 3: model.path: \"builtin:huge\": unknown built-in model");
}

/// 96 examples (60 yes, 36 no), images not needed by `split`.
fn big_dataset(dir: &TestDir) {
    let lines: Vec<String> = (0..96)
        .map(|i| {
            let suffix = if i % 8 < 5 { "yes" } else { "no" };
            format!("{{\"id\": {i}, \"suffix\": \"{suffix}\", \"image\": \"images/{i}.png\", \"prefix\": \"\"}}\n")
        })
        .collect();
    dir.write("data/data.jsonl", lines.concat());
}

fn read(dir: &TestDir, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).expect("read split output")
}

#[test]
fn split_is_seeded_and_rounds_a_fraction_like_the_users() {
    let dir = TestDir::new();
    big_dataset(&dir);
    let split = |seed: &str, out: &str| {
        let out = run(dir.gacha().args([
            "split",
            "data/data.jsonl",
            "--valid",
            "0.1",
            "--seed",
            seed,
            "--out",
            out,
        ]));
        assert_exit(&out, 0);
        texts(&out).0
    };
    let summary = split("1", "a");
    assert!(summary.starts_with("data/data.jsonl: train 86 ("), "{summary}");
    split("1", "b");
    split("2", "c");
    assert_eq!(read(&dir, "a/valid.jsonl").lines().count(), 10);
    assert_eq!(read(&dir, "a/train.jsonl").lines().count(), 86);
    assert_eq!(read(&dir, "a/valid.jsonl"), read(&dir, "b/valid.jsonl"));
    assert_eq!(read(&dir, "a/train.jsonl"), read(&dir, "b/train.jsonl"));
    assert_ne!(read(&dir, "a/valid.jsonl"), read(&dir, "c/valid.jsonl"));
    // Every example lands in exactly one file.
    let mut ids: Vec<u64> = ["a/train.jsonl", "a/valid.jsonl"]
        .iter()
        .flat_map(|f| {
            read(&dir, f)
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..96).collect::<Vec<u64>>());
}

#[test]
fn split_stratifies_when_asked() {
    let dir = TestDir::new();
    big_dataset(&dir);
    for seed in ["1", "2", "3"] {
        let out = run(dir.gacha().args([
            "split",
            "data/data.jsonl",
            "--valid",
            "10",
            "--seed",
            seed,
            "--stratify",
            "--out",
            "s",
        ]));
        assert_exit(&out, 0);
        // 10 × 60/96 = 6.25 → 6 yes; 10 × 36/96 = 3.75 → 4 no.
        assert_contains(&texts(&out).0, "valid 10 (yes 6, no 4)");
        let valid = read(&dir, "s/valid.jsonl");
        assert_eq!(valid.matches("\"suffix\": \"yes\"").count(), 6, "{valid}");
    }
}

#[test]
fn split_keeps_keys_and_rewrites_image_paths_to_resolve() {
    let dir = image_dir();
    dir.write(
        "data.jsonl",
        [
            "{\"prefix\": \"p\", \"suffix\": \"yes\", \"image\": \"images/grey.png\", \"camera\": 2}\n"
                .to_string(),
            line("no", "images/photo.jpg"),
            line("yes", "images/anim.gif"),
            line("no", "images/cmyk.jpg"),
        ]
        .concat(),
    );
    let out =
        run(dir.gacha().args(["split", "data.jsonl", "--valid", "2", "--seed", "5", "--out", "splits/one"]));
    assert_exit(&out, 0);
    let both = read(&dir, "splits/one/train.jsonl") + &read(&dir, "splits/one/valid.jsonl");
    assert_contains(
        &both,
        "{\"prefix\": \"p\", \"suffix\": \"yes\", \"image\": \"../../images/grey.png\", \"camera\": 2}\n",
    );
    assert_contains(&both, "\"image\": \"../../images/cmyk.jpg\"}");
    // The images resolve from the new files (outside their folder, hence the flag).
    for name in ["train", "valid"] {
        let out =
            run(dir.gacha().args(["check", &format!("splits/one/{name}.jsonl"), "--allow-outside-paths"]));
        assert_exit(&out, 0);
    }
    assert_contains(&texts(&out).1, "point outside its folder; read these files with --allow-outside-paths");
}

#[test]
fn split_refuses_bad_sizes() {
    let dir = TestDir::new();
    big_dataset(&dir);
    for (valid, message) in [
        ("abc", "--valid: invalid validation size \"abc\""),
        ("0.001", "validation size 0.001 of 96 examples gives an empty validation set"),
        ("96", "validation size 96 of 96 examples is 96, leaving no training examples"),
    ] {
        let out = run(dir.gacha().args(["split", "data/data.jsonl", "--valid", valid, "--out", "s"]));
        assert_exit(&out, 2);
        assert_contains(&texts(&out).1, message);
    }
}

/// `--save-inputs`: a PNG comes back with exactly its pixels (alpha kept, before the resize),
/// named by its line; a folder that is not empty is refused and what is in it is left as it was.
#[test]
fn check_save_inputs_writes_decoded_pixels_and_never_replaces_a_file() {
    let dir = image_dir();
    let pixels = RgbaImage::from_fn(7, 5, |x, y| {
        Rgba([x as u8 * 37, y as u8 * 61, (x * y) as u8 * 11, 255 - x as u8 * 30])
    });
    dir.write("images/ramp.png", encode(DynamicImage::ImageRgba8(pixels.clone()), ImageFormat::Png));
    dir.write("data.jsonl", [line("yes", "images/grey.png"), line("no", "images/ramp.png")].concat());
    let out = run(dir.gacha().args(["check", "data.jsonl", "--save-inputs", "seen"]));
    assert_exit(&out, 0);
    assert_contains(&texts(&out).0, "decoded inputs saved: 2 PNGs in seen\n");
    let saved = dir.join("seen/2-ramp.decoded.png");
    let back = image::open(&saved).expect("a PNG");
    assert_eq!(back.as_rgba8(), Some(&pixels), "the saved pixels must be the PNG's own");
    assert_eq!(
        image::open(dir.join("seen/1-grey.decoded.png")).unwrap().as_luma8().unwrap().get_pixel(3, 4),
        &Luma([77])
    );

    std::fs::write(&saved, b"mine").unwrap();
    let out = run(dir.gacha().args(["check", "data.jsonl", "--save-inputs", "seen"]));
    assert_exit(&out, 2);
    assert_contains(&texts(&out).1, "--save-inputs seen: the folder is not empty");
    assert_eq!(std::fs::read(&saved).unwrap(), b"mine", "a file in the folder must be left as it was");
}

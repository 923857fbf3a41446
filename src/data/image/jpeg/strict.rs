//! A strict look at a JPEG, for `gacha check`: training decodes past damaged entropy-coded data
//! as libjpeg (PIL, transformers) does, where libjpeg only warns, so `gacha check` names the
//! damage instead. First zune-jpeg's strict mode, which judges the segments around the scans;
//! then the first damage the decoder (`scan`) read past: a code that is in no table, a block
//! that runs past its last coefficient, a scan or restart interval that ends before its MCUs do
//! or runs on after them, restart markers out of order.

use zune_core::bytestream::ZCursor;
use zune_core::options::DecoderOptions;

/// The first coding error in `bytes`, given `read_past`: the first damage the decoder read past.
pub fn strict_error(bytes: &[u8], read_past: Option<String>) -> Option<String> {
    let options =
        DecoderOptions::default().set_strict_mode(true).set_max_width(usize::MAX).set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    // zune-jpeg prints its messages with `{:?}`, so they arrive quoted.
    if let Err(err) = decoder.decode() {
        return Some(err.to_string().trim_matches('"').to_string());
    }
    read_past
}

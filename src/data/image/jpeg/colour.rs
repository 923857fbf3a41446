//! The colour space a JPEG's components are in (libjpeg's guess from the JFIF and Adobe segments
//! and the component ids, `default_decompress_parms`), and the conversion to what Pillow's
//! `Image.open(f).convert("RGB")` gives: YCbCr to RGB in libjpeg's 16-bit fixed point, rounded as
//! its tables round (`jdcolor.c`); CMYK (and YCCK, made CMYK first as libjpeg does) read as
//! Adobe's inverted CMYK and turned into RGB with Pillow's integer formula (`cmyk2rgb` in
//! `Convert.c`); grey kept.

use super::markers::{ColourHints, Frame};

/// What the components hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourSpace {
    Grey,
    YCbCr,
    Rgb,
    Cmyk,
    Ycck,
}

impl ColourSpace {
    /// libjpeg's choice for `frame`, given its JFIF and Adobe segments (1, 3 or 4 components).
    pub fn guess(frame: &Frame, hints: ColourHints) -> ColourSpace {
        let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
        match ids.len() {
            1 => ColourSpace::Grey,
            3 if hints.jfif => ColourSpace::YCbCr,
            3 => match hints.adobe_transform {
                Some(0) => ColourSpace::Rgb,
                Some(_) => ColourSpace::YCbCr,
                None if ids == b"RGB" => ColourSpace::Rgb,
                None => ColourSpace::YCbCr,
            },
            _ => match hints.adobe_transform {
                Some(0) | None => ColourSpace::Cmyk,
                Some(_) => ColourSpace::Ycck,
            },
        }
    }

    /// Samples per output pixel: 1 for grey, else 3 (RGB).
    pub fn channels(self) -> usize {
        if self == ColourSpace::Grey {
            1
        } else {
            3
        }
    }
}

/// libjpeg's YCbCr → RGB constants: FIX(x) = x × 2^16 rounded (`jdcolor.c`).
const CR_TO_R: i32 = 91881; // FIX(1.40200)
const CB_TO_B: i32 = 116130; // FIX(1.77200)
const CR_TO_G: i32 = 46802; // FIX(0.71414)
const CB_TO_G: i32 = 22554; // FIX(0.34414)
const SCALE_BITS: u32 = 16;
const HALF: i32 = 1 << (SCALE_BITS - 1);

/// One pixel as libjpeg converts it: each term of its tables rounded as the tables round them
/// (the two green terms summed before rounding), then clamped.
fn ycc_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (i32::from(y), i32::from(cb) - 128, i32::from(cr) - 128);
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    [
        clamp(y + ((CR_TO_R * cr + HALF) >> SCALE_BITS)),
        clamp(y + ((-CB_TO_G * cb - CR_TO_G * cr + HALF) >> SCALE_BITS)),
        clamp(y + ((CB_TO_B * cb + HALF) >> SCALE_BITS)),
    ]
}

/// One row of component samples (full size, one slice per component) into output pixels.
pub fn convert_row(space: ColourSpace, rows: &[Vec<u8>], out: &mut [u8]) {
    let pixels = out.chunks_exact_mut(space.channels());
    match space {
        ColourSpace::Grey => out.copy_from_slice(&rows[0][..out.len()]),
        ColourSpace::YCbCr => {
            for (((pixel, &y), &cb), &cr) in pixels.zip(&rows[0]).zip(&rows[1]).zip(&rows[2]) {
                pixel.copy_from_slice(&ycc_to_rgb(y, cb, cr));
            }
        }
        ColourSpace::Rgb => {
            for (((pixel, &r), &g), &b) in pixels.zip(&rows[0]).zip(&rows[1]).zip(&rows[2]) {
                pixel.copy_from_slice(&[r, g, b]);
            }
        }
        ColourSpace::Cmyk => {
            for ((((pixel, &c), &m), &y), &k) in
                pixels.zip(&rows[0]).zip(&rows[1]).zip(&rows[2]).zip(&rows[3])
            {
                pixel.copy_from_slice(&cmyk_to_rgb([c, m, y], k));
            }
        }
        ColourSpace::Ycck => {
            for ((((pixel, &y), &cb), &cr), &k) in
                pixels.zip(&rows[0]).zip(&rows[1]).zip(&rows[2]).zip(&rows[3])
            {
                // libjpeg: C, M, Y are 255 minus the YCbCr → RGB conversion; K passes through.
                let rgb = ycc_to_rgb(y, cb, cr);
                pixel.copy_from_slice(&cmyk_to_rgb(rgb.map(|v| 255 - v), k));
            }
        }
    }
}

/// libjpeg's CMYK samples as Pillow reads them ("CMYK;I": Adobe's inverted convention, so ink is
/// 255 − sample) and then converts to RGB: each channel (255 − K') − C'·(255 − K')/255, with
/// Pillow's rounding of the division by 255.
fn cmyk_to_rgb(cmy: [u8; 3], k: u8) -> [u8; 3] {
    let not_k = 255 - i32::from(255 - k);
    cmy.map(|c| {
        let ink = 255 - i32::from(c);
        let product = ink * not_k + 128;
        let scaled = ((product >> 8) + product) >> 8;
        (not_k - scaled).clamp(0, 255) as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_to_rgb_rounds_as_jfif_says() {
        // JFIF: R = Y + 1.402·(Cr − 128), G = Y − 0.34414·(Cb − 128) − 0.71414·(Cr − 128),
        // B = Y + 1.772·(Cb − 128), rounded to nearest and clamped. (100, 150, 90): R = 100 −
        // 53.28, G = 100 − 7.57 + 27.14, B = 100 + 38.98. (250, 250, 250): G = 250 − 41.99 −
        // 87.13. (5, 5, 5): G = 5 + 42.33 + 87.84.
        assert_eq!(ycc_to_rgb(100, 150, 90), [47, 120, 139]);
        assert_eq!(ycc_to_rgb(128, 128, 128), [128, 128, 128]);
        assert_eq!(ycc_to_rgb(250, 250, 250), [255, 121, 255]);
        assert_eq!(ycc_to_rgb(5, 5, 5), [0, 135, 0]);
        // The constants are FIX(x) = x·2^16 rounded.
        let fix = |x: f64| (x * 65536.0 + 0.5) as i32;
        assert_eq!(
            [CR_TO_R, CB_TO_B, CR_TO_G, CB_TO_G],
            [fix(1.402), fix(1.772), fix(0.71414), fix(0.34414)]
        );
    }

    #[test]
    fn cmyk_reads_as_adobe_inverted_ink() {
        // Stored 255 is no ink: white whatever the other channels; stored K = 0 is full black.
        assert_eq!(cmyk_to_rgb([255, 255, 255], 255), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb([0, 128, 255], 0), [0, 0, 0]);
        // Stored (155, 205, 255, 205): ink C' = 100, M' = 50, Y' = 0, K' = 50, so each channel is
        // (255 − 50)·(1 − ink/255): 205·155/255 = 124.6, 205·205/255 = 164.8, 205.
        assert_eq!(cmyk_to_rgb([155, 205, 255], 205), [125, 165, 205]);
    }
}

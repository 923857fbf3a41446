//! The inverse DCT of one 8×8 block as libjpeg-turbo computes its default "islow" method
//! (`jidctint.c`: the Loeffler–Ligtenberg–Moschytz factorisation with 13-bit constants, columns
//! first keeping 2 extra bits, then rows) in the x86-64 SIMD code that Pillow's wheels run
//! (`jidctint-avx2.asm`, `jidctint-sse2.asm`): coefficients, dequantized values and the values
//! between the passes are 16-bit, sums of products 32-bit, and the output saturates to 0..=255.
//! For any block of an undamaged file this equals the C code exactly; the lane widths only show on
//! damaged data, where values overflow (the C code's range-limit table wraps instead).

/// The constants of the factorisation, × 2^13 and rounded.
const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

/// `x / 2^n` rounded half up (libjpeg's `DESCALE`), in 32-bit lanes, saturated to 16 bits.
fn descale(x: i32, n: u32) -> i16 {
    (x.wrapping_add(1 << (n - 1)) >> n).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// One 8-point inverse DCT on `x` (natural order), before its final scaling: outputs × 2^13.
/// The SIMD code adds inputs 0 and 4, 7 and 3, 5 and 1 in 16 bits, and otherwise multiplies
/// 16-bit values by 16-bit constants (pairs of products summed, as `pmaddwd` does) into 32 bits.
fn transform(x: [i16; 8]) -> [i32; 8] {
    let wide = |v: i16| i32::from(v);
    // Even part: inputs 0, 2, 4, 6.
    let even3 = wide(x[2]) * (FIX_0_541196100 + FIX_0_765366865) + wide(x[6]) * FIX_0_541196100;
    let even2 = wide(x[6]) * (FIX_0_541196100 - FIX_1_847759065) + wide(x[2]) * FIX_0_541196100;
    let sum = wide(x[0].wrapping_add(x[4])) << CONST_BITS;
    let difference = wide(x[0].wrapping_sub(x[4])) << CONST_BITS;
    let (t10, t13) = (sum.wrapping_add(even3), sum.wrapping_sub(even3));
    let (t11, t12) = (difference.wrapping_add(even2), difference.wrapping_sub(even2));
    // Odd part: inputs 7, 5, 3, 1.
    let (i7, i5, i3, i1) = (wide(x[7]), wide(x[5]), wide(x[3]), wide(x[1]));
    let (z3, z4) = (wide(x[7].wrapping_add(x[3])), wide(x[5].wrapping_add(x[1])));
    let (z3, z4) = (
        z3 * (FIX_1_175875602 - FIX_1_961570560) + z4 * FIX_1_175875602,
        z3 * FIX_1_175875602 + z4 * (FIX_1_175875602 - FIX_0_390180644),
    );
    let odd0 = (i7 * (FIX_0_298631336 - FIX_0_899976223) - i1 * FIX_0_899976223).wrapping_add(z3);
    let odd1 = (i5 * (FIX_2_053119869 - FIX_2_562915447) - i3 * FIX_2_562915447).wrapping_add(z4);
    let odd2 = (i3 * (FIX_3_072711026 - FIX_2_562915447) - i5 * FIX_2_562915447).wrapping_add(z3);
    let odd3 = (i1 * (FIX_1_501321110 - FIX_0_899976223) - i7 * FIX_0_899976223).wrapping_add(z4);
    [
        t10.wrapping_add(odd3),
        t11.wrapping_add(odd2),
        t12.wrapping_add(odd1),
        t13.wrapping_add(odd0),
        t13.wrapping_sub(odd0),
        t12.wrapping_sub(odd1),
        t11.wrapping_sub(odd2),
        t10.wrapping_sub(odd3),
    ]
}

/// A row-pass value (centred on 0) to a sample.
fn sample(value: i16) -> u8 {
    (i32::from(value).clamp(-128, 127) + 128) as u8
}

/// `transform` on 8 sets of inputs at once: `x[k][lane]` is input k of set `lane`; the result is
/// laid out the same way. (Written lane by lane so that the compiler can use vector registers.)
fn transform_lanes(x: &[[i16; 8]; 8]) -> [[i32; 8]; 8] {
    let mut out = [[0; 8]; 8];
    for lane in 0..8 {
        let y = transform(std::array::from_fn(|k| x[k][lane]));
        for (k, value) in y.into_iter().enumerate() {
            out[k][lane] = value;
        }
    }
    out
}

/// Dequantize `coefficients` (natural order) by `quant` and write the 8×8 samples to `out`, rows
/// `stride` apart.
pub fn idct_block(coefficients: &[i16], quant: &[i16; 64], out: &mut [u8], stride: usize) {
    let dequantized: [[i16; 8]; 8] = std::array::from_fn(|row| {
        std::array::from_fn(|column| coefficients[row * 8 + column].wrapping_mul(quant[row * 8 + column]))
    });
    // The columns pass: `workspace[row][column]`.
    let workspace: [[i16; 8]; 8] = if coefficients[8..].iter().all(|&c| c == 0) {
        // Rows 1 to 7 empty: the SIMD code takes each column's value from row 0 alone.
        [dequantized[0].map(|value| value.wrapping_shl(PASS1_BITS)); 8]
    } else {
        transform_lanes(&dequantized).map(|row| row.map(|value| descale(value, CONST_BITS - PASS1_BITS)))
    };
    // The rows pass, on the workspace transposed: `result[column][row]`.
    let transposed = std::array::from_fn(|column| std::array::from_fn(|row| workspace[row][column]));
    let result = transform_lanes(&transposed);
    for (row, out_row) in out.chunks_mut(stride).take(8).enumerate() {
        for (column, value) in out_row[..8].iter_mut().enumerate() {
            *value = sample(descale(result[column][row], CONST_BITS + PASS1_BITS + 3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_block_is_its_dc_over_8_plus_128() {
        // DC coefficient 8 × quantizer 16 = 128 = 8 × the block's mean offset of 16.
        let mut coefficients = [0i16; 64];
        coefficients[0] = 8;
        let mut out = [0u8; 64];
        idct_block(&coefficients, &[16; 64], &mut out, 8);
        assert_eq!(out, [144; 64]);
    }

    #[test]
    fn one_horizontal_cosine() {
        // Coefficient (u, v) = (1, 0) alone, dequantized F = 10 × 16 = 160: the 2-D IDCT gives
        // f(x, y) = ¼·C(1)·C(0)·F·cos((2x + 1)π/16) with C(0) = 1/√2, C(1) = 1, i.e.
        // 28.28·cos((2x + 1)π/16) = ±27.74, ±23.52, ±15.71, ±5.52 around 128, rounded.
        let mut coefficients = [0i16; 64];
        coefficients[1] = 10;
        let mut out = [0u8; 64];
        idct_block(&coefficients, &[16; 64], &mut out, 8);
        let want = [156, 152, 144, 134, 122, 112, 104, 100];
        for row in out.chunks(8) {
            assert_eq!(row, want);
        }
    }
}

//! Test helpers for the ops: seeded inputs, value comparison, gradient comparison against the
//! reference definitions and central finite differences.

use candle_core::{backprop::GradStore, DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shapes every op is checked on: `[B, T, D]` and `[T, D]`, one D a multiple of the kernels'
/// 8 lanes and one not.
pub const SHAPES: [&[usize]; 2] = [&[2, 5, 19], &[6, 24]];

/// Forward tolerance (max abs difference) against the reference definition.
pub const FWD_TOL: f64 = 1e-5;
/// Gradient tolerance against the reference's autograd, relative above magnitude 1.
pub const GRAD_TOL: f64 = 1e-4;

/// Uniform values in [-2, 2), f32 on CPU, from a seeded generator.
pub fn random(dims: &[usize], seed: u64) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = dims.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_vec(data, dims, &Device::Cpu)
}

/// Largest |a − b| / max(1, |b|) over all elements.
pub fn max_scaled_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(a.iter().zip(&b).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max))
}

pub fn assert_close(got: &Tensor, want: &Tensor, tol: f64) -> Result<()> {
    let diff = max_scaled_diff(got, want)?;
    assert!(diff <= tol, "difference {diff:e} > {tol:e}\ngot {got}\nwant {want}");
    Ok(())
}

/// The scalar `Σ y·r` for a fixed random `r` shaped like `y`, so every output element matters.
fn weighted_sum(y: &Tensor) -> Result<Tensor> {
    (y * random(y.dims(), 99)?.to_dtype(y.dtype())?)?.sum_all()
}

/// Gradients of `weighted_sum(f(inputs))` with respect to every input, and the output.
pub fn grads_of(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<(Tensor, Vec<Tensor>)> {
    let vars = inputs.iter().map(Var::from_tensor).collect::<Result<Vec<_>>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&tensors)?;
    let grads: GradStore = weighted_sum(&y)?.backward()?;
    let per_input = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| grads.get(t).cloned().unwrap_or_else(|| panic!("input {i} got no gradient")))
        .collect();
    Ok((y, per_input))
}

/// `fused` equals `reference` in value (FWD_TOL) and in the gradient of every input (GRAD_TOL).
pub fn assert_same_as(
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let (y_fused, g_fused) = grads_of(inputs, fused)?;
    let (y_ref, g_ref) = grads_of(inputs, reference)?;
    assert_close(&y_fused, &y_ref, FWD_TOL)?;
    for (i, (a, b)) in g_fused.iter().zip(&g_ref).enumerate() {
        let diff = max_scaled_diff(a, b)?;
        assert!(diff <= GRAD_TOL, "gradient of input {i}: difference {diff:e}\nfused {a}\nreference {b}");
    }
    Ok(())
}

/// Every element of every input's gradient matches a central difference of `weighted_sum(f)`
/// (step 1e-2, loss summed in f64; tolerance 2e-3 relative above magnitude 1, which the
/// O(h²) truncation and f32 rounding stay well inside).
pub fn assert_finite_differences(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<()> {
    const STEP: f64 = 1e-2;
    const TOL: f64 = 2e-3;
    let (_, analytic) = grads_of(inputs, &f)?;
    let r = random(f(inputs)?.dims(), 99)?.flatten_all()?.to_vec1::<f32>()?;
    let loss = |inputs: &[Tensor]| -> Result<f64> {
        let y = f(inputs)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(y.iter().zip(&r).map(|(&y, &r)| y as f64 * r as f64).sum())
    };
    for (i, input) in inputs.iter().enumerate() {
        let base = input.flatten_all()?.to_vec1::<f32>()?;
        let analytic = analytic[i].flatten_all()?.to_vec1::<f32>()?;
        for j in 0..base.len() {
            let shifted = |delta: f64| -> Result<f64> {
                let mut data = base.clone();
                data[j] += delta as f32;
                let mut moved = inputs.to_vec();
                moved[i] = Tensor::from_vec(data, input.dims(), input.device())?;
                loss(&moved)
            };
            let numeric = (shifted(STEP)? - shifted(-STEP)?) / (2.0 * STEP);
            let got = analytic[j] as f64;
            assert!(
                (got - numeric).abs() <= TOL * numeric.abs().max(1.0),
                "input {i} element {j}: analytic {got} vs finite difference {numeric}"
            );
        }
    }
    Ok(())
}

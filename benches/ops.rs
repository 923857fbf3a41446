//! Fused ops of `gacha::model::ops` against their composed candle definitions: median ms of the
//! forward pass and of forward + backward, f32 on CPU, at sizes near the `small` training
//! config (batch 4 × 160 tokens, width 256, MLP 1024, 4 heads). x is a `Var`; norm parameters
//! and linear weights are frozen, as in attention-only and LoRA training. Runs of the two
//! variants are interleaved so that load from other processes hits both alike.
//!
//! Run once per thread count (candle's matmul and our kernels both read it):
//! `RAYON_NUM_THREADS=1 cargo bench --bench ops` and `RAYON_NUM_THREADS=2 cargo bench --bench ops`;
//! `cargo bench --bench ops -- gelu` runs only the cases whose name contains `gelu`.

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};
use gacha::model::ops::{self, composed};

/// Untimed runs before measuring.
const WARMUP: usize = 3;
/// Timed runs; the median is reported.
const RUNS: usize = 21;
const EPS: f64 = 1e-6;

type Op = Box<dyn Fn(&Tensor) -> Result<Tensor>>;

struct Case {
    name: &'static str,
    input_dims: Vec<usize>,
    fused: Op,
    composed: Op,
}

fn randn(dims: &[usize]) -> Result<Tensor> {
    Tensor::randn(0f32, 1.0, dims, &Device::Cpu)
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn elapsed_ms(run: impl FnOnce() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    run()?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// Median (forward ms, forward + backward ms) of each op, runs interleaved.
fn time(ops: [&Op; 2], dims: &[usize]) -> Result<[(f64, f64); 2]> {
    let x = Var::from_tensor(&randn(dims)?)?;
    let x = x.as_tensor();
    let mut times = [[vec![], vec![]], [vec![], vec![]]];
    for run in 0..WARMUP + RUNS {
        for (op, times) in ops.iter().zip(times.iter_mut()) {
            let forward = elapsed_ms(|| op(x).map(drop))?;
            let both = elapsed_ms(|| op(x)?.backward().map(drop))?;
            if run >= WARMUP {
                times[0].push(forward);
                times[1].push(both);
            }
        }
    }
    Ok(times.map(|[forward, both]| (median(forward), median(both))))
}

fn cases() -> Result<Vec<Case>> {
    let d = 256;
    let (rms_w, ln_w, ln_b) = ((randn(&[d])? * 0.1)?, randn(&[d])?, randn(&[d])?);
    let (ln_w2, ln_b2, rms_w2) = (ln_w.clone(), ln_b.clone(), rms_w.clone());
    let lin_w = (randn(&[1024, d])? * 0.05)?;
    let lin_w2 = lin_w.clone();
    Ok(vec![
        Case {
            name: "gelu_tanh [4,160,1024]",
            input_dims: vec![4, 160, 1024],
            fused: Box::new(ops::gelu_tanh),
            composed: Box::new(composed::gelu_tanh),
        },
        Case {
            name: "softmax_last_dim [16,160,160]",
            input_dims: vec![16, 160, 160],
            fused: Box::new(ops::softmax_last_dim),
            composed: Box::new(composed::softmax_last_dim),
        },
        Case {
            name: "rms_norm_one_plus [4,160,256]",
            input_dims: vec![4, 160, d],
            fused: Box::new(move |x| ops::rms_norm_one_plus(x, &rms_w, EPS)),
            composed: Box::new(move |x| composed::rms_norm_one_plus(x, &rms_w2, EPS)),
        },
        Case {
            name: "layer_norm [4,160,256]",
            input_dims: vec![4, 160, d],
            fused: Box::new(move |x| ops::layer_norm(x, &ln_w, &ln_b, EPS)),
            composed: Box::new(move |x| composed::layer_norm(x, &ln_w2, &ln_b2, EPS)),
        },
        Case {
            name: "frozen_linear [640,256]x[1024,256]^T",
            input_dims: vec![640, d],
            fused: Box::new(move |x| ops::frozen_linear(x, &lin_w, None)),
            composed: Box::new(move |x| composed::linear(x, &lin_w2, None)),
        },
    ])
}

fn main() -> Result<()> {
    println!("threads: {}, median of {RUNS} runs, ms", rayon::current_num_threads());
    println!("| op | fused fwd | composed fwd | speed-up | fused fwd+bwd | composed fwd+bwd | speed-up |");
    println!("|---|---|---|---|---|---|---|");
    // cargo passes `--bench`; any other argument filters cases by name.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    for case in cases()? {
        if !filters.is_empty() && !filters.iter().any(|f| case.name.contains(f.as_str())) {
            continue;
        }
        let [(fused_fwd, fused_both), (comp_fwd, comp_both)] =
            time([&case.fused, &case.composed], &case.input_dims)?;
        println!(
            "| {} | {fused_fwd:.2} | {comp_fwd:.2} | {:.1}× | {fused_both:.2} | {comp_both:.2} | {:.1}× |",
            case.name,
            comp_fwd / fused_fwd,
            comp_both / fused_both
        );
    }
    Ok(())
}

//! Optimizers over the trainable parameters, with a learning rate set every step, and gradient
//! accumulation over micro-batches.
//!
//! Accumulation keeps one running f32 sum per parameter and drops each micro-batch's `GradStore`
//! at once: `GradStore::extend` would also keep every activation-sized entry of every micro-batch
//! (docs/design.md §10.3). A parameter that receives no gradient is an error, never skipped:
//! candle's fused ops have no backward pass and would otherwise freeze weights silently (§10.1).

use anyhow::{bail, Context};
use candle_core::{backprop::GradStore, DType, Tensor, Var};
use candle_nn::Optimizer as _;
use serde::{Deserialize, Serialize};

/// Which optimizer; the learning rate is not part of it (the schedule sets it every step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Plain SGD, `w ← w − lr·g`: no momentum, no weight decay (the big_vision demo's optimizer).
    Sgd,
    /// AdamW with decoupled weight decay (candle-nn's implementation).
    AdamW(AdamWParams),
}

/// AdamW's hyper-parameters (the learning rate is the schedule's); the defaults are candle's
/// `ParamsAdamW::default()`, which are PyTorch's `torch.optim.AdamW` defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// Decay of the running mean of gradients (default 0.9).
    pub beta1: f64,
    /// Decay of the running mean of squared gradients (default 0.999).
    pub beta2: f64,
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay: `w ← w·(1 − lr·weight_decay)` each step (default 0.01).
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams::from(candle_nn::ParamsAdamW::default())
    }
}

impl From<candle_nn::ParamsAdamW> for AdamWParams {
    fn from(p: candle_nn::ParamsAdamW) -> Self {
        AdamWParams { beta1: p.beta1, beta2: p.beta2, eps: p.eps, weight_decay: p.weight_decay }
    }
}

/// An optimizer by name, as a spec (`optimizer = "adamw"`) or the command line (`--optimizer
/// adamw`) writes it; AdamW then gets its default hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain SGD, w ← w − lr·g (the big_vision demo's).
    Sgd,
    /// AdamW, betas 0.9/0.999, eps 1e-8, weight decay 0.01.
    #[value(name = "adamw")]
    AdamW,
}

impl OptimizerKind {
    pub fn optimizer(self) -> Optimizer {
        match self {
            OptimizerKind::Sgd => Optimizer::Sgd,
            OptimizerKind::AdamW => Optimizer::AdamW(AdamWParams::default()),
        }
    }
}

impl Optimizer {
    /// The optimizer's short name, as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::AdamW(_) => "adamw",
        }
    }

    /// An optimizer with fresh state over `params` (named trainable variables).
    pub fn build(&self, params: &[(String, Var)]) -> anyhow::Result<OptimizerState> {
        let vars: Vec<Var> = params.iter().map(|(_, v)| v.clone()).collect();
        let inner = match *self {
            Optimizer::Sgd => Inner::Sgd(candle_nn::SGD::new(vars, 0.0)?),
            Optimizer::AdamW(p) => Inner::AdamW(candle_nn::AdamW::new(
                vars,
                candle_nn::ParamsAdamW {
                    lr: 0.0,
                    beta1: p.beta1,
                    beta2: p.beta2,
                    eps: p.eps,
                    weight_decay: p.weight_decay,
                },
            )?),
        };
        Ok(OptimizerState { inner })
    }
}

enum Inner {
    Sgd(candle_nn::SGD),
    AdamW(candle_nn::AdamW),
}

/// A built optimizer with its running state (AdamW moments).
pub struct OptimizerState {
    inner: Inner,
}

impl OptimizerState {
    /// Update every parameter from `grads` with learning rate `lr`.
    pub fn step(&mut self, lr: f64, grads: &GradStore) -> anyhow::Result<()> {
        match &mut self.inner {
            Inner::Sgd(opt) => {
                opt.set_learning_rate(lr);
                opt.step(grads)?;
            }
            Inner::AdamW(opt) => {
                opt.set_learning_rate(lr);
                opt.step(grads)?;
            }
        }
        Ok(())
    }
}

/// The mean gradient of one optimizer step, ready for `OptimizerState::step`.
pub struct MeanGradients {
    pub grads: GradStore,
    /// Global L2 norm over all parameters' mean gradients (for logging).
    pub norm: f64,
}

/// Running f32 sums of the gradients of several micro-batches.
pub struct GradAccumulator {
    params: Vec<(String, Var)>,
    sums: Vec<Option<Tensor>>,
    micro_batches: usize,
}

impl GradAccumulator {
    pub fn new(params: &[(String, Var)]) -> GradAccumulator {
        GradAccumulator { params: params.to_vec(), sums: vec![None; params.len()], micro_batches: 0 }
    }

    /// Add one micro-batch's gradients of these parameters (the caller drops the store).
    pub fn add(&mut self, grads: &GradStore) -> anyhow::Result<()> {
        for ((name, var), sum) in self.params.iter().zip(&mut self.sums) {
            let Some(grad) = grads.get(var) else {
                bail!("trainable parameter {name} received no gradient (an op without a backward pass on its path?)");
            };
            let grad = grad.to_dtype(DType::F32)?;
            *sum = Some(match sum.take() {
                None => grad,
                Some(prev) => {
                    (prev + grad).with_context(|| format!("accumulating the gradient of {name}"))?
                }
            });
        }
        self.micro_batches += 1;
        Ok(())
    }

    /// The mean over the micro-batches added so far, and its global norm.
    pub fn mean(self) -> anyhow::Result<MeanGradients> {
        if self.micro_batches == 0 {
            bail!("no micro-batch was accumulated");
        }
        let scale = 1.0 / self.micro_batches as f64;
        let mut grads = GradStore::default();
        let mut squares = Vec::with_capacity(self.params.len());
        for ((_, var), sum) in self.params.iter().zip(self.sums) {
            let sum = sum.expect("every parameter has a sum once a micro-batch was added");
            let mean = if self.micro_batches == 1 { sum } else { (sum * scale)? };
            squares.push(mean.sqr()?.sum_all()?);
            grads.insert(var, mean);
        }
        let norm = match squares.is_empty() {
            true => 0.0,
            false => f64::from(Tensor::stack(&squares, 0)?.sum_all()?.to_scalar::<f32>()?).sqrt(),
        };
        Ok(MeanGradients { grads, norm })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn var(values: &[f32]) -> Var {
        Var::from_slice(values, values.len(), &Device::Cpu).unwrap()
    }

    fn values(var: &Var) -> Vec<f32> {
        var.as_tensor().to_vec1::<f32>().unwrap()
    }

    fn close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "got {got:?}, want {want:?}");
        }
    }

    /// loss = Σ c·w, so the gradient is c.
    fn linear_loss_grads(w: &Var, c: &[f32]) -> GradStore {
        let c = Tensor::from_slice(c, c.len(), &Device::Cpu).unwrap();
        (w.as_tensor() * c).unwrap().sum_all().unwrap().backward().unwrap()
    }

    #[test]
    fn one_sgd_step_is_w_minus_lr_g() {
        let w = var(&[1.0, 2.0, 3.0]);
        let params = vec![("w".to_string(), w.clone())];
        let mut acc = GradAccumulator::new(&params);
        acc.add(&linear_loss_grads(&w, &[0.5, -1.0, 2.0])).unwrap();
        let mean = acc.mean().unwrap();
        // |g| = √(0.25 + 1 + 4) = √5.25.
        assert!((mean.norm - 5.25f64.sqrt()).abs() < 1e-6);
        Optimizer::Sgd.build(&params).unwrap().step(0.1, &mean.grads).unwrap();
        // By hand: [1 − 0.05, 2 + 0.1, 3 − 0.2].
        close(&values(&w), &[0.95, 2.1, 2.8], 1e-6);
    }

    #[test]
    fn adamw_defaults_are_pytorchs() {
        // torch.optim.AdamW's documented defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01.
        let want = AdamWParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
        assert_eq!(AdamWParams::default(), want);
    }

    #[test]
    fn first_adamw_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/|g| (eps negligible), after decay w·(1 − lr·wd).
        let w = var(&[1.0, 2.0, 3.0]);
        let params = vec![("w".to_string(), w.clone())];
        let mut acc = GradAccumulator::new(&params);
        acc.add(&linear_loss_grads(&w, &[0.5, -1.0, 2.0])).unwrap();
        let opt = Optimizer::AdamW(AdamWParams::default());
        opt.build(&params).unwrap().step(0.1, &acc.mean().unwrap().grads).unwrap();
        close(&values(&w), &[0.999 - 0.1, 1.998 + 0.1, 2.997 - 0.1], 1e-6);
    }

    /// Gradient of mean_i (w·x_i − y_i)² over the rows `rows`.
    fn squared_error_grads(w: &Var, rows: std::ops::Range<usize>) -> GradStore {
        let x = [[1.0f32, 2.0], [3.0, 1.0], [0.0, 1.0], [2.0, 2.0]];
        let y = [1.0f32, 0.0, 2.0, 1.0];
        let n = rows.len();
        let x: Vec<f32> = x[rows.clone()].iter().flatten().copied().collect();
        let x = Tensor::from_vec(x, (n, 2), &Device::Cpu).unwrap();
        let y = Tensor::from_slice(&y[rows], n, &Device::Cpu).unwrap();
        let pred = x.matmul(&w.as_tensor().unsqueeze(1).unwrap()).unwrap().squeeze(1).unwrap();
        (pred - y).unwrap().sqr().unwrap().mean_all().unwrap().backward().unwrap()
    }

    #[test]
    fn accumulated_micro_batches_give_the_big_batch_mean_gradient() {
        // By hand with w = [1, −1]: residuals [−2, 2, −3, −1], gradient (2/4)·Σ r_i x_i = [1, −3.5].
        let w = var(&[1.0, -1.0]);
        let params = vec![("w".to_string(), w.clone())];
        let mut big = GradAccumulator::new(&params);
        big.add(&squared_error_grads(&w, 0..4)).unwrap();
        let big = big.mean().unwrap();
        let mut acc = GradAccumulator::new(&params);
        acc.add(&squared_error_grads(&w, 0..2)).unwrap();
        acc.add(&squared_error_grads(&w, 2..4)).unwrap();
        let acc = acc.mean().unwrap();
        for mean in [&big, &acc] {
            close(&mean.grads.get(&w).unwrap().to_vec1::<f32>().unwrap(), &[1.0, -3.5], 1e-6);
            assert!((mean.norm - (1.0f64 + 12.25).sqrt()).abs() < 1e-5);
        }
    }

    #[test]
    fn a_parameter_without_gradient_is_an_error_naming_it() {
        let w = var(&[1.0]);
        let frozen_out = var(&[2.0]);
        let params = vec![("w".to_string(), w.clone()), ("lonely".to_string(), frozen_out)];
        let mut acc = GradAccumulator::new(&params);
        let err = acc.add(&linear_loss_grads(&w, &[1.0])).unwrap_err();
        assert!(err.to_string().contains("lonely"), "{err}");
    }
}

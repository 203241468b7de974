//! The ops of a training step outside the network: `FusedAdamW` against Burn's `Adam` with
//! clipping and decoupled decay (to the bit without clipping; its record loads both ways), the
//! teacher's moving average, the views' soft cross-entropy against an f64 reference (value and
//! gradient, on NdArray's passes and Candle's composed ops) and the buffer-sharing reshape. The
//! in-place paths are checked to leave every other holder of a buffer untouched.

// burn-candle is marked deprecated in Burn 0.21; here it runs the composed ops.
#![allow(deprecated)]

use burn::backend::candle::Candle;
use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleMapper, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use face_nets::ops::{adamw_step, ema, reshape, view_cross_entropy, AdamWStep};
use face_nets::FusedAdamW;

type Fast = NdArray<f32>;
type Train = Autodiff<NdArray<f32>>;
type CandleTrain = Autodiff<Candle<f32, i64>>;

/// Deterministic values in [-scale, scale).
fn values(len: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0) * scale)
        .collect()
}

fn tensor<B: Backend, const D: usize>(shape: [usize; D], seed: usize, scale: f32) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(
        TensorData::new(values(n, seed, scale), shape),
        &Default::default(),
    )
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().expect("f32 values")
}

/// A two-layer model: matrices (decayed) and biases (not).
#[derive(Module, Debug)]
struct Model<B: Backend> {
    a: Linear<B>,
    b: Linear<B>,
}

impl<B: Backend> Model<B> {
    fn new(device: &B::Device) -> Self {
        let mut a = LinearConfig::new(37, 300).init(device);
        let mut b = LinearConfig::new(300, 5).init(device);
        a.weight = Param::from_tensor(tensor([37, 300], 1, 0.2));
        a.bias = Some(Param::from_tensor(tensor([300], 2, 0.1)));
        b.weight = Param::from_tensor(tensor([300, 5], 3, 0.2));
        b.bias = Some(Param::from_tensor(tensor([5], 4, 0.1)));
        Self { a, b }
    }

    fn loss(&self, step: usize) -> Tensor<B, 1> {
        let x: Tensor<B, 2> = tensor([8, 37], 10 + step, 1.0);
        let y = self.b.forward(self.a.forward(x).tanh());
        (y * tensor::<B, 2>([8, 5], 20 + step, 1.0)).sum()
    }

    fn flat(&self) -> Vec<f32> {
        [self.a.weight.val(), self.b.weight.val()]
            .into_iter()
            .flat_map(host)
            .chain(
                [self.a.bias.as_ref(), self.b.bias.as_ref()]
                    .into_iter()
                    .flatten()
                    .flat_map(|p| host(p.val())),
            )
            .collect()
    }
}

/// The decoupled decay face-ssl applied before Burn's `Adam`: matrices scaled by `factor`.
struct Decay(f64);

impl<B: AutodiffBackend> ModuleMapper<B> for Decay {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if D < 2 {
            return param;
        }
        let (id, t, mapper) = param.consume();
        Param::from_mapped_value(
            id,
            Tensor::from_inner(t.inner().mul_scalar(self.0)).require_grad(),
            mapper,
        )
    }
}

const LR: [f64; 4] = [1e-2, 3e-3, 5e-3, 2e-3];
const WD: [f64; 4] = [0.04, 0.1, 0.2, 0.3];

/// `steps` steps of Burn's `Adam` (its own clipping) after the decay mapper.
/// Burn's `Adam` record, which `FusedAdamW` keeps too.
type AdamRecord<B> = face_nets::optim::AdamWRecord<Model<B>, B>;

fn burn_steps<B: AutodiffBackend>(
    clip: Option<f32>,
    steps: std::ops::Range<usize>,
    model: Model<B>,
    record: Option<AdamRecord<B>>,
) -> (Model<B>, AdamRecord<B>) {
    let mut optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_grad_clipping(clip.map(GradientClippingConfig::Norm))
        .init::<B, Model<B>>();
    if let Some(r) = record {
        optim = optim.load_record(r);
    }
    let mut model = model;
    for s in steps {
        let grads = GradientsParams::from_grads(model.loss(s).backward(), &model);
        let decayed = model.map(&mut Decay(1.0 - LR[s] * WD[s]));
        model = optim.step(LR[s], decayed, grads);
    }
    (model, optim.to_record())
}

fn fused_steps<B: AutodiffBackend>(
    clip: Option<f32>,
    steps: std::ops::Range<usize>,
    model: Model<B>,
    optim: FusedAdamW<Model<B>, B>,
) -> (Model<B>, FusedAdamW<Model<B>, B>) {
    let mut optim = optim.with_epsilon(1e-8).with_clip_norm(clip);
    let mut model = model;
    for s in steps {
        let grads = GradientsParams::from_grads(model.loss(s).backward(), &model);
        optim.set_weight_decay(WD[s]);
        model = optim.step(LR[s], model, grads);
    }
    (model, optim)
}

fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
        / scale
}

/// Without clipping the fused pass does Burn's operations in Burn's order: the same bits after
/// four steps (so the moments and step count match too), on NdArray's pass and on Candle's
/// composed ops. With a clipping norm that bites, the norm is summed in another order: 1e-6.
#[test]
fn fused_adamw_matches_burns_adam_with_clipping_and_decay() {
    let device = Default::default();
    let (want, _) = burn_steps(None, 0..4, Model::<Train>::new(&device), None);
    let (got, _) = fused_steps(None, 0..4, Model::<Train>::new(&device), FusedAdamW::new());
    let (want, got) = (want.flat(), got.flat());
    let moved = want
        .iter()
        .zip(Model::<Train>::new(&device).flat())
        .filter(|(a, b)| *a != b)
        .count();
    assert!(
        moved > want.len() * 9 / 10,
        "only {moved} of {} parameters moved",
        want.len()
    );
    let differ = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differ,
        0,
        "{differ} of {} parameters differ from Burn's Adam",
        want.len()
    );

    let (want, _) = burn_steps(Some(0.05), 0..4, Model::<Train>::new(&device), None);
    let (got, _) = fused_steps(Some(0.05), 0..4, Model::<Train>::new(&device), FusedAdamW::new());
    let err = max_rel(&got.flat(), &want.flat());
    assert!(err <= 1e-6, "clipped: max relative |Δ| {err:e}");
    // The clip bites: without it the result is far off.
    let (free, _) = fused_steps(None, 0..4, Model::<Train>::new(&device), FusedAdamW::new());
    assert!(
        max_rel(&free.flat(), &want.flat()) > 1e-3,
        "the clipping norm never took effect"
    );

    let cd = Default::default();
    let (want, _) = burn_steps(Some(0.05), 0..4, Model::<CandleTrain>::new(&cd), None);
    let (got, _) = fused_steps(
        Some(0.05),
        0..4,
        Model::<CandleTrain>::new(&cd),
        FusedAdamW::new(),
    );
    let err = max_rel(&got.flat(), &want.flat());
    assert!(err <= 1e-6, "Candle (composed ops): max relative |Δ| {err:e}");
}

/// A record written by Burn's `Adam` continues in `FusedAdamW` and back, through a file: the
/// same bits as four uninterrupted steps.
#[test]
fn fused_adamw_record_is_burns_adam_record() {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("face-nets-adamw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (want, _) = burn_steps(None, 0..4, Model::<Train>::new(&device), None);

    let (half, record) = burn_steps(None, 0..2, Model::<Train>::new(&device), None);
    let path = dir.join("adam.bin");
    face_nets::record::write_record::<Train, _>(record, &path).expect("write");
    let record = face_nets::record::read_record::<Train, _>(&path, &device).expect("read");
    let optim = FusedAdamW::<Model<Train>, Train>::new().load_record(record);
    let (got, _) = fused_steps(None, 2..4, half, optim);
    assert_eq!(got.flat(), want.flat(), "Burn's record continued in FusedAdamW");

    let (half, optim) = fused_steps(None, 0..2, Model::<Train>::new(&device), FusedAdamW::new());
    face_nets::record::write_record::<Train, _>(optim.to_record(), &path).expect("write");
    let record = face_nets::record::read_record::<Train, _>(&path, &device).expect("read");
    let (got, _) = burn_steps(None, 2..4, half, Some(record));
    assert_eq!(
        got.flat(),
        want.flat(),
        "FusedAdamW's record continued in Burn's Adam"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The in-place paths write only buffers nobody else holds: a kept clone of the parameter,
/// the moments and the teacher keeps its values, and both paths give the same result.
#[test]
fn in_place_updates_leave_other_holders_untouched() {
    let shape = [70, 1000];
    let step = AdamWStep {
        lr: 1e-3,
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        time: 3,
        decay: Some(0.999),
        clip_norm: Some(1.0),
    };
    let p = || tensor::<Fast, 2>(shape, 1, 1.0);
    let g = || tensor::<Fast, 2>(shape, 2, 0.01);
    let m = || tensor::<Fast, 2>(shape, 3, 0.01);
    let v = || tensor::<Fast, 2>(shape, 4, 0.01).abs();
    let (kept_p, kept_m, kept_v) = (p(), m(), v());
    let shared = adamw_step(kept_p.clone(), g(), Some((kept_m.clone(), kept_v.clone())), &step);
    let alone = adamw_step(p(), g(), Some((m(), v())), &step);
    for (what, kept, fresh) in [("param", kept_p, p()), ("m", kept_m, m()), ("v", kept_v, v())] {
        assert_eq!(host(kept), host(fresh), "{what}: a kept clone changed");
    }
    for (what, a, b) in [
        ("param", shared.0, alone.0),
        ("m", shared.1, alone.1),
        ("v", shared.2, alone.2),
    ] {
        let (a, b) = (host(a), host(b));
        assert_eq!(a, b, "{what}: shared and unique inputs differ");
    }

    let (t, s) = (
        || tensor::<Fast, 2>(shape, 5, 1.0),
        || tensor::<Fast, 2>(shape, 6, 1.0),
    );
    let want: Vec<f32> = host(t())
        .iter()
        .zip(host(s()))
        .map(|(t, s)| t * 0.996f32 + s * (1.0 - 0.996f64) as f32)
        .collect();
    let kept = t();
    let shared = ema(kept.clone(), s(), 0.996);
    assert_eq!(host(kept), host(t()), "ema: a kept clone of the teacher changed");
    assert_eq!(host(shared), want, "ema, shared teacher");
    assert_eq!(host(ema(t(), s(), 0.996)), want, "ema, teacher held alone");
    // A transposed (non-contiguous) teacher and Candle take the composed ops.
    let tt = tensor::<Fast, 2>([1000, 70], 5, 1.0).swap_dims(0, 1);
    let got = host(ema(tt.clone(), s(), 0.5));
    let want: Vec<f32> = host(tt)
        .iter()
        .zip(host(s()))
        .map(|(t, s)| t * 0.5 + s * 0.5)
        .collect();
    assert_eq!(got, want, "ema, transposed teacher");
    let cd = Default::default();
    let ct = Tensor::<Candle<f32, i64>, 2>::from_data(TensorData::new(host(t()), shape), &cd);
    let cs = Tensor::<Candle<f32, i64>, 2>::from_data(TensorData::new(host(s()), shape), &cd);
    let want: Vec<f32> = host(t())
        .iter()
        .zip(host(s()))
        .map(|(t, s)| t * 0.996f32 + s * (1.0 - 0.996f64) as f32)
        .collect();
    assert_eq!(host(ema(ct, cs, 0.996)), want, "ema on Candle");
}

/// The f64 reference of [`view_cross_entropy`]: the loss and its gradient,
/// `Σ_i w_i·(mass_i·softmax − q_i)/τ` per row.
fn cross_entropy_f64(
    x: &[f32],
    q: &[f32],
    w: &[f32],
    [n, k, views, targets]: [usize; 4],
    temp: f64,
) -> (f64, Vec<f64>) {
    let mut loss = 0.0;
    let mut grad = vec![0.0; x.len()];
    for v in 0..views {
        for r in 0..n {
            let row: Vec<f64> = x[(v * n + r) * k..][..k]
                .iter()
                .map(|x| f64::from(*x) / temp)
                .collect();
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
            let out = &mut grad[(v * n + r) * k..][..k];
            for i in 0..targets {
                let wi = f64::from(w[v * targets + i]);
                let t: Vec<f64> = q[(i * n + r) * k..][..k].iter().map(|q| f64::from(*q)).collect();
                let mass: f64 = t.iter().sum();
                for c in 0..k {
                    loss -= wi * t[c] * (row[c] - lse);
                    out[c] += wi * (mass * (row[c] - lse).exp() - t[c]) / temp;
                }
            }
        }
    }
    (loss, grad)
}

/// Soft cross-entropy between views: DINO's layout (2 target views, 2 + 3 student views, a
/// view never against itself) over 1 000 classes, against the f64 reference, on NdArray
/// (inference and autodiff: one pass each way) and Candle (Burn's composed ops). The f64
/// gradient is itself checked against central differences.
#[test]
fn view_cross_entropy_matches_the_f64_reference() {
    let (n, k, views, targets, temp) = (3, 1000, 5, 2, 0.1);
    let x = values(views * n * k, 7, 3.0);
    // Targets: softmax rows (mass 1), as DINO's teacher gives.
    let mut q = values(targets * n * k, 8, 2.0);
    for row in q.chunks_mut(k) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        row.iter_mut().for_each(|v| *v = (*v - max).exp());
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
    let w: Vec<f32> = (0..views)
        .flat_map(|v| (0..targets).map(move |i| if v == i { 0.0 } else { 1.0 / (n * 8) as f32 }))
        .collect();
    let dims = [n, k, views, targets];
    let (want, want_grad) = cross_entropy_f64(&x, &q, &w, dims, temp);

    // The reference gradient against central differences on a few entries.
    for idx in [0, 17, 1234, views * n * k - 1] {
        let h = 1e-3f32;
        let mut xp = x.clone();
        xp[idx] += h;
        let mut xm = x.clone();
        xm[idx] -= h;
        let fd = (cross_entropy_f64(&xp, &q, &w, dims, temp).0
            - cross_entropy_f64(&xm, &q, &w, dims, temp).0)
            / f64::from(2.0 * h);
        assert!(
            (fd - want_grad[idx]).abs() <= 1e-4 * want_grad.iter().fold(1e-3f64, |m, g| m.max(g.abs())),
            "entry {idx}: finite difference {fd}, reference {}",
            want_grad[idx]
        );
    }

    let check = |what: &str, loss: f32, grad: Option<Vec<f32>>| {
        let rel = (f64::from(loss) - want).abs() / want.abs();
        assert!(rel <= 1e-5, "{what}: loss {loss}, reference {want}");
        if let Some(grad) = grad {
            let scale = want_grad.iter().fold(0f64, |m, g| m.max(g.abs()));
            let err = grad
                .iter()
                .zip(&want_grad)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max)
                / scale;
            assert!(err <= 1e-5, "{what}: gradient max relative |Δ| {err:e}");
        }
    };
    let xs = || TensorData::new(x.clone(), [views * n, k]);
    let qs = || TensorData::new(q.clone(), [targets * n, k]);
    let device = Default::default();
    let loss = view_cross_entropy(
        Tensor::<Fast, 2>::from_data(xs(), &device),
        Tensor::from_data(qs(), &device),
        n,
        &w,
        temp,
    );
    check("NdArray", host(loss)[0], None);

    let xt = Tensor::<Train, 2>::from_data(xs(), &device).require_grad();
    let loss = view_cross_entropy(xt.clone(), Tensor::from_data(qs(), &device), n, &w, temp);
    let g = loss.clone().backward();
    check("Autodiff<NdArray>", host(loss)[0], xt.grad(&g).map(host));

    let cd = Default::default();
    let xt = Tensor::<CandleTrain, 2>::from_data(xs(), &cd).require_grad();
    let loss = view_cross_entropy(xt.clone(), Tensor::from_data(qs(), &cd), n, &w, temp);
    let g = loss.clone().backward();
    check("Candle (composed)", host(loss)[0], xt.grad(&g).map(host));
}

/// `ops::reshape` gives `Tensor::reshape`'s values and shape, for contiguous and transposed
/// inputs, in inference and under autodiff (the gradient reshaped back); a contiguous input
/// shares its buffer, so the output's values are the input's.
#[test]
fn reshape_matches_burns_and_carries_the_gradient() {
    let x = tensor::<Fast, 3>([4, 5, 6], 1, 1.0);
    let y: Tensor<Fast, 2> = reshape(x.clone(), [20, 6]);
    assert_eq!(y.dims(), [20, 6]);
    assert_eq!(host(y), host(x.clone()));
    let xt = x.clone().swap_dims(0, 2);
    let got: Tensor<Fast, 2> = reshape(xt.clone(), [6, 20]);
    assert_eq!(host(got), host(xt.reshape([6, 20])), "transposed input");

    for transposed in [false, true] {
        let grads = |fast: bool| {
            let x = tensor::<Train, 3>([4, 5, 6], 2, 1.0).require_grad();
            let input = if transposed {
                x.clone().swap_dims(1, 2)
            } else {
                x.clone()
            };
            let y: Tensor<Train, 2> = if fast {
                reshape(input, [20, 6])
            } else {
                input.reshape([20, 6])
            };
            let g = (y.clone() * tensor::<Train, 2>([20, 6], 3, 1.0)).sum().backward();
            (host(y.inner()), x.grad(&g).map(host))
        };
        let (fast, burn) = (grads(true), grads(false));
        assert_eq!(fast.0, burn.0, "transposed {transposed}: values");
        assert_eq!(fast.1, burn.1, "transposed {transposed}: gradient");
        assert!(fast.1.is_some());
    }
}

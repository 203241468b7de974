//! One training step of iResNet + ArcFace on a tiny batch (Autodiff<NdArray<f32>>).

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use face_nets::{Backbone, CombinedMarginConfig, IResNetConfig, NormLinear};

/// One SGD step of iResNet + ArcFace on a tiny batch lowers the loss; every gradient is finite.
#[test]
fn one_arcface_step_reduces_the_loss() {
    type T = Autodiff<NdArray<f32>>;
    let device = Default::default();
    <T as Backend>::seed(&device, 7);
    let backbone = IResNetConfig::new([1, 1, 1, 1])
        .with_base_width(8)
        .with_num_features(16)
        .with_input_size(32)
        .init::<T>(&device);
    let centres = NormLinear::<T>::new(16, 4, &device);
    let margin = CombinedMarginConfig::arcface()
        .with_scale(16.0)
        .with_m2(0.2)
        .init();
    let x = Tensor::<T, 4>::random(
        [8, 3, 32, 32],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let y = Tensor::<T, 1, Int>::from_data([0, 1, 2, 3, 0, 1, 2, 3], &device);

    #[derive(Module, Debug)]
    struct Net<B: Backend> {
        backbone: face_nets::IResNet<B>,
        centres: NormLinear<B>,
    }
    let mut net = Net { backbone, centres };
    let loss_of = |net: &Net<T>| {
        let cos = net.centres.forward(net.backbone.features(x.clone()));
        margin.forward(cos, y.clone())
    };
    let mut optim = SgdConfig::new().init();
    let before = loss_of(&net);
    let before_value: f32 = before.clone().into_scalar();
    let grads = before.backward();
    let g = net.centres.weight.grad(&grads).unwrap();
    let g: Vec<f32> = g.into_data().to_vec().unwrap();
    assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| *v != 0.0));
    let grads = GradientsParams::from_grads(grads, &net);
    let mut finite = true;
    net.visit(&mut FiniteGrads {
        grads: &grads,
        finite: &mut finite,
    });
    assert!(finite, "a gradient is not finite");
    // The step must be small for the first-order decrease to hold whatever the initial weights:
    // other tests in this binary draw from Burn's process-wide RNG in parallel, so the seed above
    // does not fix the init. Measured over 200 seeds: lr 0.05 raised the loss for 27 of 40,
    // 3e-3 for 1 of 40, 1e-3 for none of 200.
    net = optim.step(1e-3, net, grads);
    let after: f32 = loss_of(&net).into_scalar();
    eprintln!("ArcFace loss {before_value} → {after}");
    assert!(after < before_value, "{before_value} → {after}");
}

struct FiniteGrads<'a> {
    grads: &'a GradientsParams,
    finite: &'a mut bool,
}

impl<B: burn::tensor::backend::AutodiffBackend> burn::module::ModuleVisitor<B> for FiniteGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let v: Vec<f32> = g.into_data().convert::<f32>().to_vec().unwrap();
            *self.finite &= v.iter().all(|x| x.is_finite());
        }
    }
}

// Generated from ONNX "models/fr_feature.onnx" by burn-onnx
use burn::nn::conv::Conv2d;
use burn::nn::conv::Conv2dConfig;
use burn::nn::PRelu;
use burn::nn::PReluConfig;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::Bytes;
use burn_store::BurnpackStore;
use burn_store::ModuleSnapshot;

#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    conv2d1: Conv2d<B>,
    prelu1: PRelu<B>,
    conv2d2: Conv2d<B>,
    prelu2: PRelu<B>,
    conv2d3: Conv2d<B>,
    prelu3: PRelu<B>,
    conv2d4: Conv2d<B>,
    prelu4: PRelu<B>,
    conv2d5: Conv2d<B>,
    conv2d6: Conv2d<B>,
    prelu5: PRelu<B>,
    conv2d7: Conv2d<B>,
    prelu6: PRelu<B>,
    conv2d8: Conv2d<B>,
    conv2d9: Conv2d<B>,
    prelu7: PRelu<B>,
    conv2d10: Conv2d<B>,
    prelu8: PRelu<B>,
    conv2d11: Conv2d<B>,
    conv2d12: Conv2d<B>,
    prelu9: PRelu<B>,
    conv2d13: Conv2d<B>,
    prelu10: PRelu<B>,
    conv2d14: Conv2d<B>,
    conv2d15: Conv2d<B>,
    prelu11: PRelu<B>,
    conv2d16: Conv2d<B>,
    prelu12: PRelu<B>,
    conv2d17: Conv2d<B>,
    conv2d18: Conv2d<B>,
    prelu13: PRelu<B>,
    conv2d19: Conv2d<B>,
    prelu14: PRelu<B>,
    conv2d20: Conv2d<B>,
    conv2d21: Conv2d<B>,
    prelu15: PRelu<B>,
    conv2d22: Conv2d<B>,
    prelu16: PRelu<B>,
    conv2d23: Conv2d<B>,
    conv2d24: Conv2d<B>,
    prelu17: PRelu<B>,
    conv2d25: Conv2d<B>,
    prelu18: PRelu<B>,
    conv2d26: Conv2d<B>,
    conv2d27: Conv2d<B>,
    prelu19: PRelu<B>,
    conv2d28: Conv2d<B>,
    prelu20: PRelu<B>,
    conv2d29: Conv2d<B>,
    conv2d30: Conv2d<B>,
    prelu21: PRelu<B>,
    conv2d31: Conv2d<B>,
    prelu22: PRelu<B>,
    conv2d32: Conv2d<B>,
    conv2d33: Conv2d<B>,
    prelu23: PRelu<B>,
    conv2d34: Conv2d<B>,
    prelu24: PRelu<B>,
    conv2d35: Conv2d<B>,
    conv2d36: Conv2d<B>,
    prelu25: PRelu<B>,
    conv2d37: Conv2d<B>,
    prelu26: PRelu<B>,
    conv2d38: Conv2d<B>,
    conv2d39: Conv2d<B>,
    prelu27: PRelu<B>,
    conv2d40: Conv2d<B>,
    prelu28: PRelu<B>,
    conv2d41: Conv2d<B>,
    conv2d42: Conv2d<B>,
    prelu29: PRelu<B>,
    conv2d43: Conv2d<B>,
    prelu30: PRelu<B>,
    conv2d44: Conv2d<B>,
    conv2d45: Conv2d<B>,
    prelu31: PRelu<B>,
    conv2d46: Conv2d<B>,
    prelu32: PRelu<B>,
    conv2d47: Conv2d<B>,
    conv2d48: Conv2d<B>,
    prelu33: PRelu<B>,
    conv2d49: Conv2d<B>,
    conv2d50: Conv2d<B>,
    phantom: core::marker::PhantomData<B>,
    #[module(skip)]
    device: B::Device,
}

impl<B: Backend> Model<B> {
    /// Load model weights from in-memory bytes.
    ///
    /// The bytes must be the contents of a `.bpk` file.
    pub fn from_bytes(bytes: Bytes, device: &B::Device) -> Self {
        let mut model = Self::new(device);
        let mut store = BurnpackStore::from_bytes(Some(bytes));
        model
            .load_from(&mut store)
            .expect("Failed to load burnpack bytes");
        model
    }
}

impl<B: Backend> Model<B> {
    #[allow(unused_variables)]
    pub fn new(device: &B::Device) -> Self {
        let conv2d1 = Conv2dConfig::new([3, 64], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu1 = PReluConfig::new().with_num_parameters(64).init(device);
        let conv2d2 = Conv2dConfig::new([64, 64], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(64)
            .with_bias(true)
            .init(device);
        let prelu2 = PReluConfig::new().with_num_parameters(64).init(device);
        let conv2d3 = Conv2dConfig::new([64, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu3 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d4 = Conv2dConfig::new([128, 128], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(128)
            .with_bias(true)
            .init(device);
        let prelu4 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d5 = Conv2dConfig::new([128, 64], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d6 = Conv2dConfig::new([64, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu5 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d7 = Conv2dConfig::new([128, 128], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(128)
            .with_bias(true)
            .init(device);
        let prelu6 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d8 = Conv2dConfig::new([128, 64], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d9 = Conv2dConfig::new([64, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu7 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d10 = Conv2dConfig::new([128, 128], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(128)
            .with_bias(true)
            .init(device);
        let prelu8 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d11 = Conv2dConfig::new([128, 64], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d12 = Conv2dConfig::new([64, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu9 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d13 = Conv2dConfig::new([128, 128], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(128)
            .with_bias(true)
            .init(device);
        let prelu10 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d14 = Conv2dConfig::new([128, 64], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d15 = Conv2dConfig::new([64, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu11 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d16 = Conv2dConfig::new([128, 128], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(128)
            .with_bias(true)
            .init(device);
        let prelu12 = PReluConfig::new().with_num_parameters(128).init(device);
        let conv2d17 = Conv2dConfig::new([128, 64], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d18 = Conv2dConfig::new([64, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu13 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d19 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu14 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d20 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d21 = Conv2dConfig::new([128, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu15 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d22 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu16 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d23 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d24 = Conv2dConfig::new([128, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu17 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d25 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu18 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d26 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d27 = Conv2dConfig::new([128, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu19 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d28 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu20 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d29 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d30 = Conv2dConfig::new([128, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu21 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d31 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu22 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d32 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d33 = Conv2dConfig::new([128, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu23 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d34 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu24 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d35 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d36 = Conv2dConfig::new([128, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu25 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d37 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu26 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d38 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d39 = Conv2dConfig::new([128, 512], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu27 = PReluConfig::new().with_num_parameters(512).init(device);
        let conv2d40 = Conv2dConfig::new([512, 512], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(512)
            .with_bias(true)
            .init(device);
        let prelu28 = PReluConfig::new().with_num_parameters(512).init(device);
        let conv2d41 = Conv2dConfig::new([512, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d42 = Conv2dConfig::new([128, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu29 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d43 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu30 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d44 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d45 = Conv2dConfig::new([128, 256], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu31 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d46 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(256)
            .with_bias(true)
            .init(device);
        let prelu32 = PReluConfig::new().with_num_parameters(256).init(device);
        let conv2d47 = Conv2dConfig::new([256, 128], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d48 = Conv2dConfig::new([128, 512], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let prelu33 = PReluConfig::new().with_num_parameters(512).init(device);
        let conv2d49 = Conv2dConfig::new([512, 512], [7, 7])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(512)
            .with_bias(true)
            .init(device);
        let conv2d50 = Conv2dConfig::new([512, 512], [1, 1])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        Self {
            conv2d1,
            prelu1,
            conv2d2,
            prelu2,
            conv2d3,
            prelu3,
            conv2d4,
            prelu4,
            conv2d5,
            conv2d6,
            prelu5,
            conv2d7,
            prelu6,
            conv2d8,
            conv2d9,
            prelu7,
            conv2d10,
            prelu8,
            conv2d11,
            conv2d12,
            prelu9,
            conv2d13,
            prelu10,
            conv2d14,
            conv2d15,
            prelu11,
            conv2d16,
            prelu12,
            conv2d17,
            conv2d18,
            prelu13,
            conv2d19,
            prelu14,
            conv2d20,
            conv2d21,
            prelu15,
            conv2d22,
            prelu16,
            conv2d23,
            conv2d24,
            prelu17,
            conv2d25,
            prelu18,
            conv2d26,
            conv2d27,
            prelu19,
            conv2d28,
            prelu20,
            conv2d29,
            conv2d30,
            prelu21,
            conv2d31,
            prelu22,
            conv2d32,
            conv2d33,
            prelu23,
            conv2d34,
            prelu24,
            conv2d35,
            conv2d36,
            prelu25,
            conv2d37,
            prelu26,
            conv2d38,
            conv2d39,
            prelu27,
            conv2d40,
            prelu28,
            conv2d41,
            conv2d42,
            prelu29,
            conv2d43,
            prelu30,
            conv2d44,
            conv2d45,
            prelu31,
            conv2d46,
            prelu32,
            conv2d47,
            conv2d48,
            prelu33,
            conv2d49,
            conv2d50,
            phantom: core::marker::PhantomData,
            device: device.clone(),
        }
    }

    #[allow(clippy::let_and_return, clippy::approx_constant)]
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 2> {
        let prelu1_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d1,
            None,
            input,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu1),
        );
        let prelu2_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d2,
            None,
            prelu1_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu2),
        );
        let prelu3_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d3,
            None,
            prelu2_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu3),
        );
        let prelu4_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d4,
            None,
            prelu3_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu4),
        );
        let conv2d5_out1 = face_nets::ops::conv2d(&self.conv2d5, prelu4_out1);
        let prelu5_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d6,
            None,
            conv2d5_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu5),
        );
        let prelu6_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d7,
            None,
            prelu5_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu6),
        );
        let conv2d8_out1 = face_nets::ops::conv2d(&self.conv2d8, prelu6_out1);
        let add1_out1 = conv2d5_out1.add(conv2d8_out1);
        let prelu7_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d9,
            None,
            add1_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu7),
        );
        let prelu8_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d10,
            None,
            prelu7_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu8),
        );
        let conv2d11_out1 = face_nets::ops::conv2d(&self.conv2d11, prelu8_out1);
        let add2_out1 = add1_out1.add(conv2d11_out1);
        let prelu9_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d12,
            None,
            add2_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu9),
        );
        let prelu10_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d13,
            None,
            prelu9_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu10),
        );
        let conv2d14_out1 = face_nets::ops::conv2d(&self.conv2d14, prelu10_out1);
        let add3_out1 = add2_out1.add(conv2d14_out1);
        let prelu11_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d15,
            None,
            add3_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu11),
        );
        let prelu12_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d16,
            None,
            prelu11_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu12),
        );
        let conv2d17_out1 = face_nets::ops::conv2d(&self.conv2d17, prelu12_out1);
        let add4_out1 = add3_out1.add(conv2d17_out1);
        let prelu13_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d18,
            None,
            add4_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu13),
        );
        let prelu14_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d19,
            None,
            prelu13_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu14),
        );
        let conv2d20_out1 = face_nets::ops::conv2d(&self.conv2d20, prelu14_out1);
        let prelu15_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d21,
            None,
            conv2d20_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu15),
        );
        let prelu16_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d22,
            None,
            prelu15_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu16),
        );
        let conv2d23_out1 = face_nets::ops::conv2d(&self.conv2d23, prelu16_out1);
        let add5_out1 = conv2d20_out1.add(conv2d23_out1);
        let prelu17_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d24,
            None,
            add5_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu17),
        );
        let prelu18_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d25,
            None,
            prelu17_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu18),
        );
        let conv2d26_out1 = face_nets::ops::conv2d(&self.conv2d26, prelu18_out1);
        let add6_out1 = add5_out1.add(conv2d26_out1);
        let prelu19_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d27,
            None,
            add6_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu19),
        );
        let prelu20_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d28,
            None,
            prelu19_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu20),
        );
        let conv2d29_out1 = face_nets::ops::conv2d(&self.conv2d29, prelu20_out1);
        let add7_out1 = add6_out1.add(conv2d29_out1);
        let prelu21_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d30,
            None,
            add7_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu21),
        );
        let prelu22_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d31,
            None,
            prelu21_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu22),
        );
        let conv2d32_out1 = face_nets::ops::conv2d(&self.conv2d32, prelu22_out1);
        let add8_out1 = add7_out1.add(conv2d32_out1);
        let prelu23_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d33,
            None,
            add8_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu23),
        );
        let prelu24_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d34,
            None,
            prelu23_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu24),
        );
        let conv2d35_out1 = face_nets::ops::conv2d(&self.conv2d35, prelu24_out1);
        let add9_out1 = add8_out1.add(conv2d35_out1);
        let prelu25_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d36,
            None,
            add9_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu25),
        );
        let prelu26_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d37,
            None,
            prelu25_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu26),
        );
        let conv2d38_out1 = face_nets::ops::conv2d(&self.conv2d38, prelu26_out1);
        let add10_out1 = add9_out1.add(conv2d38_out1);
        let prelu27_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d39,
            None,
            add10_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu27),
        );
        let prelu28_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d40,
            None,
            prelu27_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu28),
        );
        let conv2d41_out1 = face_nets::ops::conv2d(&self.conv2d41, prelu28_out1);
        let prelu29_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d42,
            None,
            conv2d41_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu29),
        );
        let prelu30_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d43,
            None,
            prelu29_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu30),
        );
        let conv2d44_out1 = face_nets::ops::conv2d(&self.conv2d44, prelu30_out1);
        let add11_out1 = conv2d41_out1.add(conv2d44_out1);
        let prelu31_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d45,
            None,
            add11_out1.clone(),
            None,
            face_nets::ops::Activation::PRelu(&self.prelu31),
        );
        let prelu32_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d46,
            None,
            prelu31_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu32),
        );
        let conv2d47_out1 = face_nets::ops::conv2d(&self.conv2d47, prelu32_out1);
        let add12_out1 = add11_out1.add(conv2d47_out1);
        let prelu33_out1 = face_nets::ops::conv2d_fused(
            &self.conv2d48,
            None,
            add12_out1,
            None,
            face_nets::ops::Activation::PRelu(&self.prelu33),
        );
        let conv2d49_out1 = face_nets::ops::conv2d(&self.conv2d49, prelu33_out1);
        let conv2d50_out1 = face_nets::ops::conv2d(&self.conv2d50, conv2d49_out1);
        let batch = conv2d50_out1.dims()[0] as i32;
        let reshape1_out1 = conv2d50_out1.reshape([batch, -1]);
        reshape1_out1
    }
}

// Generated from ONNX "models/age-v1.onnx" by burn-onnx
use burn::nn::conv::Conv2d;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::AdaptiveAvgPool2d;
use burn::nn::pool::AdaptiveAvgPool2dConfig;
use burn::nn::pool::AvgPool2d;
use burn::nn::pool::AvgPool2dConfig;
use burn::nn::pool::MaxPool2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::Bytes;
use burn_store::BurnpackStore;
use burn_store::ModuleSnapshot;

#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    constant3: burn::module::Param<Tensor<B, 4>>,
    constant4: burn::module::Param<Tensor<B, 4>>,
    constant7: burn::module::Param<Tensor<B, 4>>,
    constant8: burn::module::Param<Tensor<B, 4>>,
    constant11: burn::module::Param<Tensor<B, 4>>,
    constant12: burn::module::Param<Tensor<B, 4>>,
    constant15: burn::module::Param<Tensor<B, 4>>,
    constant16: burn::module::Param<Tensor<B, 4>>,
    constant19: burn::module::Param<Tensor<B, 4>>,
    constant20: burn::module::Param<Tensor<B, 4>>,
    constant25: burn::module::Param<Tensor<B, 4>>,
    constant26: burn::module::Param<Tensor<B, 4>>,
    constant29: burn::module::Param<Tensor<B, 4>>,
    constant30: burn::module::Param<Tensor<B, 4>>,
    constant33: burn::module::Param<Tensor<B, 4>>,
    constant34: burn::module::Param<Tensor<B, 4>>,
    constant37: burn::module::Param<Tensor<B, 4>>,
    constant38: burn::module::Param<Tensor<B, 4>>,
    constant42: burn::module::Param<Tensor<B, 4>>,
    constant43: burn::module::Param<Tensor<B, 4>>,
    constant46: burn::module::Param<Tensor<B, 4>>,
    constant47: burn::module::Param<Tensor<B, 4>>,
    constant48: burn::module::Param<Tensor<B, 2>>,
    constant49: burn::module::Param<Tensor<B, 1>>,
    conv2d1: Conv2d<B>,
    maxpool2d1: MaxPool2d,
    conv2d2: Conv2d<B>,
    conv2d3: Conv2d<B>,
    conv2d4: Conv2d<B>,
    conv2d5: Conv2d<B>,
    averagepool2d1: AvgPool2d,
    conv2d6: Conv2d<B>,
    conv2d7: Conv2d<B>,
    conv2d8: Conv2d<B>,
    conv2d9: Conv2d<B>,
    averagepool2d2: AvgPool2d,
    conv2d10: Conv2d<B>,
    conv2d11: Conv2d<B>,
    globalaveragepool1: AdaptiveAvgPool2d,
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
        let constant3: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 64, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 64, 1, 1].into(),
        );
        let constant4: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 64, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 64, 1, 1].into(),
        );
        let constant7: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 64, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 64, 1, 1].into(),
        );
        let constant8: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 64, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 64, 1, 1].into(),
        );
        let constant11: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 64, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 64, 1, 1].into(),
        );
        let constant12: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 64, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 64, 1, 1].into(),
        );
        let constant15: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 128, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 128, 1, 1].into(),
        );
        let constant16: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 128, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 128, 1, 1].into(),
        );
        let constant19: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 128, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 128, 1, 1].into(),
        );
        let constant20: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 128, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 128, 1, 1].into(),
        );
        let constant25: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 128, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 128, 1, 1].into(),
        );
        let constant26: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 128, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 128, 1, 1].into(),
        );
        let constant29: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 128, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 128, 1, 1].into(),
        );
        let constant30: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 128, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 128, 1, 1].into(),
        );
        let constant33: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 256, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 256, 1, 1].into(),
        );
        let constant34: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 256, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 256, 1, 1].into(),
        );
        let constant37: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 256, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 256, 1, 1].into(),
        );
        let constant38: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 256, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 256, 1, 1].into(),
        );
        let constant42: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 256, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 256, 1, 1].into(),
        );
        let constant43: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 256, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 256, 1, 1].into(),
        );
        let constant46: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 256, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 256, 1, 1].into(),
        );
        let constant47: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 256, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 256, 1, 1].into(),
        );
        let constant48: burn::module::Param<Tensor<B, 2>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<B, 2>::zeros([256, 81], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [256, 81].into(),
        );
        let constant49: burn::module::Param<Tensor<B, 1>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<B, 1>::zeros([81], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [81].into(),
        );
        let conv2d1 = Conv2dConfig::new([3, 64], [7, 7])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let maxpool2d1 = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_ceil_mode(false)
            .init();
        let conv2d2 = Conv2dConfig::new([64, 64], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d3 = Conv2dConfig::new([64, 64], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d4 = Conv2dConfig::new([64, 128], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d5 = Conv2dConfig::new([128, 128], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let averagepool2d1 = AvgPool2dConfig::new([2, 2])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Valid)
            .with_count_include_pad(false)
            .with_ceil_mode(false)
            .init();
        let conv2d6 = Conv2dConfig::new([128, 128], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d7 = Conv2dConfig::new([128, 128], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d8 = Conv2dConfig::new([128, 256], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Valid)
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d9 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let averagepool2d2 = AvgPool2dConfig::new([2, 2])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Valid)
            .with_count_include_pad(false)
            .with_ceil_mode(false)
            .init();
        let conv2d10 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d11 = Conv2dConfig::new([256, 256], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let globalaveragepool1 = AdaptiveAvgPool2dConfig::new([1, 1]).init();
        Self {
            constant3,
            constant4,
            constant7,
            constant8,
            constant11,
            constant12,
            constant15,
            constant16,
            constant19,
            constant20,
            constant25,
            constant26,
            constant29,
            constant30,
            constant33,
            constant34,
            constant37,
            constant38,
            constant42,
            constant43,
            constant46,
            constant47,
            constant48,
            constant49,
            conv2d1,
            maxpool2d1,
            conv2d2,
            conv2d3,
            conv2d4,
            conv2d5,
            averagepool2d1,
            conv2d6,
            conv2d7,
            conv2d8,
            conv2d9,
            averagepool2d2,
            conv2d10,
            conv2d11,
            globalaveragepool1,
            phantom: core::marker::PhantomData,
            device: device.clone(),
        }
    }

    #[allow(clippy::let_and_return, clippy::approx_constant)]
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let constant3_out1 = self.constant3.val();
        let constant4_out1 = self.constant4.val();
        let constant7_out1 = self.constant7.val();
        let constant8_out1 = self.constant8.val();
        let constant11_out1 = self.constant11.val();
        let constant12_out1 = self.constant12.val();
        let constant15_out1 = self.constant15.val();
        let constant16_out1 = self.constant16.val();
        let constant19_out1 = self.constant19.val();
        let constant20_out1 = self.constant20.val();
        let constant25_out1 = self.constant25.val();
        let constant26_out1 = self.constant26.val();
        let constant29_out1 = self.constant29.val();
        let constant30_out1 = self.constant30.val();
        let constant33_out1 = self.constant33.val();
        let constant34_out1 = self.constant34.val();
        let constant37_out1 = self.constant37.val();
        let constant38_out1 = self.constant38.val();
        let constant42_out1 = self.constant42.val();
        let constant43_out1 = self.constant43.val();
        let constant46_out1 = self.constant46.val();
        let constant47_out1 = self.constant47.val();
        let constant48_out1 = self.constant48.val();
        let constant49_out1 = self.constant49.val();
        let relu1_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d1,
            constant3_out1,
            constant4_out1,
            images,
            None,
            face_nets::ops::Activation::Relu,
        );
        let maxpool2d1_out1 = face_nets::ops::max_pool2d(&self.maxpool2d1, relu1_out1);
        let relu2_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d2,
            constant7_out1,
            constant8_out1,
            maxpool2d1_out1.clone(),
            None,
            face_nets::ops::Activation::Relu,
        );
        let relu3_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d3,
            constant11_out1,
            constant12_out1,
            relu2_out1,
            Some(maxpool2d1_out1),
            face_nets::ops::Activation::Relu,
        );
        let relu4_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d4,
            constant15_out1,
            constant16_out1,
            relu3_out1.clone(),
            None,
            face_nets::ops::Activation::Relu,
        );
        let add6_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d5,
            constant19_out1,
            constant20_out1,
            relu4_out1,
            None,
            face_nets::ops::Activation::Identity,
        );
        let averagepool2d1_out1 = face_nets::ops::avg_pool2d(&self.averagepool2d1, relu3_out1);
        let pad1_out1 = averagepool2d1_out1.pad(
            [
                (0usize, 0usize),
                (0usize, 64usize),
                (0usize, 0usize),
                (0usize, 0usize),
            ],
            burn::tensor::ops::PadMode::Constant(0_f32),
        );
        let pad2_out1 = add6_out1.pad(
            [
                (0usize, 0usize),
                (0usize, 0usize),
                (0usize, 1usize),
                (0usize, 1usize),
            ],
            burn::tensor::ops::PadMode::Constant(0_f32),
        );
        let add7_out1 = pad1_out1.add(pad2_out1);
        let relu5_out1 = burn::tensor::activation::relu(add7_out1);
        let relu6_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d6,
            constant25_out1,
            constant26_out1,
            relu5_out1.clone(),
            None,
            face_nets::ops::Activation::Relu,
        );
        let relu7_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d7,
            constant29_out1,
            constant30_out1,
            relu6_out1,
            Some(relu5_out1),
            face_nets::ops::Activation::Relu,
        );
        let relu8_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d8,
            constant33_out1,
            constant34_out1,
            relu7_out1.clone(),
            None,
            face_nets::ops::Activation::Relu,
        );
        let averagepool2d2_out1 = face_nets::ops::avg_pool2d(&self.averagepool2d2, relu7_out1);
        let pad3_out1 = averagepool2d2_out1.pad(
            [
                (0usize, 0usize),
                (0usize, 128usize),
                (0usize, 0usize),
                (0usize, 0usize),
            ],
            burn::tensor::ops::PadMode::Constant(0_f32),
        );
        let relu9_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d9,
            constant37_out1,
            constant38_out1,
            relu8_out1,
            Some(pad3_out1),
            face_nets::ops::Activation::Relu,
        );
        let relu10_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d10,
            constant42_out1,
            constant43_out1,
            relu9_out1.clone(),
            None,
            face_nets::ops::Activation::Relu,
        );
        let relu11_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d11,
            constant46_out1,
            constant47_out1,
            relu10_out1,
            Some(relu9_out1),
            face_nets::ops::Activation::Relu,
        );
        let globalaveragepool1_out1 = self.globalaveragepool1.forward(relu11_out1);
        let flatten1_out1 = {
            let leading_dim = globalaveragepool1_out1.shape()[..1].iter().product::<usize>() as i32;
            globalaveragepool1_out1.reshape::<2, _>([leading_dim, -1])
        };
        let gemm1_out1 = flatten1_out1.matmul(constant48_out1) + constant49_out1.unsqueeze();
        let softmax1_out1 = burn::tensor::activation::softmax(gemm1_out1, 1);
        softmax1_out1
    }
}

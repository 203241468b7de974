// Generated from ONNX "models/gender-v1.onnx" by burn-onnx
use burn::nn::conv::Conv2d;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::AvgPool2d;
use burn::nn::pool::AvgPool2dConfig;
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
    constant17: burn::module::Param<Tensor<B, 1>>,
    constant18: burn::module::Param<Tensor<B, 2>>,
    constant19: burn::module::Param<Tensor<B, 1>>,
    constant20: burn::module::Param<Tensor<B, 1>>,
    constant21: burn::module::Param<Tensor<B, 2>>,
    constant22: burn::module::Param<Tensor<B, 1>>,
    conv2d1: Conv2d<B>,
    conv2d2: Conv2d<B>,
    averagepool2d1: AvgPool2d,
    conv2d3: Conv2d<B>,
    conv2d4: Conv2d<B>,
    averagepool2d2: AvgPool2d,
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
                Tensor::<B, 4>::zeros([1, 32, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 32, 1, 1].into(),
        );
        let constant4: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 32, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 32, 1, 1].into(),
        );
        let constant7: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 32, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 32, 1, 1].into(),
        );
        let constant8: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 32, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 32, 1, 1].into(),
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
                Tensor::<B, 4>::zeros([1, 64, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 64, 1, 1].into(),
        );
        let constant16: burn::module::Param<Tensor<B, 4>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 4>::zeros([1, 64, 1, 1], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [1, 64, 1, 1].into(),
        );
        let constant17: burn::module::Param<Tensor<B, 1>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<B, 1>::zeros([1], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [1].into(),
        );
        let constant18: burn::module::Param<Tensor<B, 2>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| {
                Tensor::<B, 2>::zeros([4096, 16], (device, burn::tensor::DType::F32))
            },
            device.clone(),
            false,
            [4096, 16].into(),
        );
        let constant19: burn::module::Param<Tensor<B, 1>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<B, 1>::zeros([16], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [16].into(),
        );
        let constant20: burn::module::Param<Tensor<B, 1>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<B, 1>::zeros([1], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [1].into(),
        );
        let constant21: burn::module::Param<Tensor<B, 2>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<B, 2>::zeros([16, 2], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [16, 2].into(),
        );
        let constant22: burn::module::Param<Tensor<B, 1>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<B, 1>::zeros([2], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [2].into(),
        );
        let conv2d1 = Conv2dConfig::new([3, 32], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d2 = Conv2dConfig::new([32, 32], [3, 3])
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
        let conv2d3 = Conv2dConfig::new([32, 64], [3, 3])
            .with_stride([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([1, 1])
            .with_groups(1)
            .with_bias(true)
            .init(device);
        let conv2d4 = Conv2dConfig::new([64, 64], [3, 3])
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
        Self {
            constant3,
            constant4,
            constant7,
            constant8,
            constant11,
            constant12,
            constant15,
            constant16,
            constant17,
            constant18,
            constant19,
            constant20,
            constant21,
            constant22,
            conv2d1,
            conv2d2,
            averagepool2d1,
            conv2d3,
            conv2d4,
            averagepool2d2,
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
        let constant17_out1 = self.constant17.val();
        let constant18_out1 = self.constant18.val();
        let constant19_out1 = self.constant19.val();
        let constant20_out1 = self.constant20.val();
        let constant21_out1 = self.constant21.val();
        let constant22_out1 = self.constant22.val();
        let relu1_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d1,
            constant3_out1,
            constant4_out1,
            images,
            None,
            face_nets::ops::Activation::Relu,
        );
        let relu2_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d2,
            constant7_out1,
            constant8_out1,
            relu1_out1,
            None,
            face_nets::ops::Activation::Relu,
        );
        let averagepool2d1_out1 = face_nets::ops::avg_pool2d(&self.averagepool2d1, relu2_out1);
        let relu3_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d3,
            constant11_out1,
            constant12_out1,
            averagepool2d1_out1,
            None,
            face_nets::ops::Activation::Relu,
        );
        let relu4_out1 = face_nets::ops::conv2d_affine(
            &self.conv2d4,
            constant15_out1,
            constant16_out1,
            relu3_out1,
            None,
            face_nets::ops::Activation::Relu,
        );
        let averagepool2d2_out1 = face_nets::ops::avg_pool2d(&self.averagepool2d2, relu4_out1);
        let mul5_out1 = averagepool2d2_out1.mul((constant17_out1).unsqueeze_dims(&[0isize, 1isize, 2isize]));
        let flatten1_out1 = {
            let leading_dim = mul5_out1.shape()[..1].iter().product::<usize>() as i32;
            mul5_out1.reshape::<2, _>([leading_dim, -1])
        };
        let gemm1_out1 = flatten1_out1.matmul(constant18_out1) + constant19_out1.unsqueeze();
        let relu5_out1 = burn::tensor::activation::relu(gemm1_out1);
        let mul6_out1 = relu5_out1.mul((constant20_out1).unsqueeze_dims(&[0isize]));
        let gemm2_out1 = mul6_out1.matmul(constant21_out1) + constant22_out1.unsqueeze();
        let softmax1_out1 = burn::tensor::activation::softmax(gemm2_out1, 1);
        softmax1_out1
    }
}

//! The values an ONNX graph passes between its nodes: float tensors whose rank is known only at
//! run time, shapes, and scalars.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorData, TensorPrimitive};

/// A float tensor of rank 1 to 6 (ViT exports reach 5), the rank known at run time.
#[derive(Debug, Clone)]
pub(super) enum Dyn<B: Backend> {
    R1(Tensor<B, 1>),
    R2(Tensor<B, 2>),
    R3(Tensor<B, 3>),
    R4(Tensor<B, 4>),
    R5(Tensor<B, 5>),
    R6(Tensor<B, 6>),
}

/// `$body` on the typed tensor, whatever its rank; the result is a `Dyn` of the same rank.
macro_rules! each_rank {
    ($x:expr, $t:ident => $body:expr) => {
        match $x {
            Dyn::R1($t) => Dyn::R1($body),
            Dyn::R2($t) => Dyn::R2($body),
            Dyn::R3($t) => Dyn::R3($body),
            Dyn::R4($t) => Dyn::R4($body),
            Dyn::R5($t) => Dyn::R5($body),
            Dyn::R6($t) => Dyn::R6($body),
        }
    };
}

/// `$body` on the typed tensor, whatever its rank; the result is `$body`'s own type.
macro_rules! with_rank {
    ($x:expr, $t:ident => $body:expr) => {
        match $x {
            Dyn::R1($t) => $body,
            Dyn::R2($t) => $body,
            Dyn::R3($t) => $body,
            Dyn::R4($t) => $body,
            Dyn::R5($t) => $body,
            Dyn::R6($t) => $body,
        }
    };
}

/// `$body` on two typed tensors of the same rank (`None` when the ranks differ).
macro_rules! same_rank {
    ($a:expr, $b:expr, ($x:ident, $y:ident) => $body:expr) => {
        match ($a, $b) {
            (Dyn::R1($x), Dyn::R1($y)) => Some(Dyn::R1($body)),
            (Dyn::R2($x), Dyn::R2($y)) => Some(Dyn::R2($body)),
            (Dyn::R3($x), Dyn::R3($y)) => Some(Dyn::R3($body)),
            (Dyn::R4($x), Dyn::R4($y)) => Some(Dyn::R4($body)),
            (Dyn::R5($x), Dyn::R5($y)) => Some(Dyn::R5($body)),
            (Dyn::R6($x), Dyn::R6($y)) => Some(Dyn::R6($body)),
            _ => None,
        }
    };
}

pub(super) use {each_rank, same_rank};

impl<B: Backend> Dyn<B> {
    /// The tensor's dimensions.
    pub(super) fn dims(&self) -> Vec<usize> {
        with_rank!(self, t => t.dims().to_vec())
    }

    /// The tensor's rank.
    pub(super) fn rank(&self) -> usize {
        with_rank!(self, t => t.dims().len())
    }

    fn into_primitive(self) -> FloatTensor<B> {
        with_rank!(self, t => t.into_primitive().tensor())
    }

    /// A primitive of `rank` dimensions as a `Dyn`; `None` for a rank outside 1..=6.
    fn from_primitive(p: FloatTensor<B>, rank: usize) -> Option<Self> {
        let p = TensorPrimitive::Float(p);
        Some(match rank {
            1 => Dyn::R1(Tensor::from_primitive(p)),
            2 => Dyn::R2(Tensor::from_primitive(p)),
            3 => Dyn::R3(Tensor::from_primitive(p)),
            4 => Dyn::R4(Tensor::from_primitive(p)),
            5 => Dyn::R5(Tensor::from_primitive(p)),
            6 => Dyn::R6(Tensor::from_primitive(p)),
            _ => return None,
        })
    }

    /// Host data (any float or integer type, converted to f32) on `device`.
    pub(super) fn from_data(data: TensorData, device: &B::Device) -> Option<Self> {
        let data = data.convert::<f32>();
        Some(match data.shape.len() {
            1 => Dyn::R1(Tensor::from_data(data, device)),
            2 => Dyn::R2(Tensor::from_data(data, device)),
            3 => Dyn::R3(Tensor::from_data(data, device)),
            4 => Dyn::R4(Tensor::from_data(data, device)),
            5 => Dyn::R5(Tensor::from_data(data, device)),
            6 => Dyn::R6(Tensor::from_data(data, device)),
            _ => return None,
        })
    }

    /// The typed tensor of rank `D`; `None` when the rank differs.
    pub(super) fn into_tensor<const D: usize>(self) -> Option<Tensor<B, D>> {
        (self.rank() == D).then(|| Tensor::from_primitive(TensorPrimitive::Float(self.into_primitive())))
    }

    /// The same values in `dims` (the element counts must agree; the caller checks).
    pub(super) fn reshape(self, dims: &[usize]) -> Option<Self> {
        let p = B::float_reshape(self.into_primitive(), Shape::from(dims.to_vec()));
        Self::from_primitive(p, dims.len())
    }

    /// The axes reordered: output axis `i` is input axis `axes[i]`.
    pub(super) fn permute(self, axes: &[usize]) -> Self {
        let rank = self.rank();
        let p = B::float_permute(self.into_primitive(), axes);
        Self::from_primitive(p, rank).expect("a permutation keeps the rank")
    }

    /// `ranges[i]` of axis `i` (start, end, step ≥ 1), every axis given.
    pub(super) fn slice(self, ranges: &[(usize, usize, usize)]) -> Self {
        let rank = self.rank();
        let slices: Vec<burn::tensor::Slice> = ranges
            .iter()
            .map(|&(start, end, step)| burn::tensor::Slice {
                start: start as isize,
                end: Some(end as isize),
                step: step as isize,
            })
            .collect();
        let p = B::float_slice(self.into_primitive(), &slices);
        Self::from_primitive(p, rank).expect("a slice keeps the rank")
    }

    /// Tensors of one rank joined along `axis` (the caller checks the other dimensions).
    pub(super) fn cat(parts: Vec<Self>, axis: usize) -> Option<Self> {
        let rank = parts.first()?.rank();
        let prims = parts.into_iter().map(Self::into_primitive).collect();
        Self::from_primitive(B::float_cat(prims, axis), rank)
    }

    /// The tensor with size-1 axes added in front up to `rank` (numpy broadcasting's alignment).
    pub(super) fn lift(self, rank: usize) -> Option<Self> {
        let dims = self.dims();
        if dims.len() >= rank {
            return Some(self);
        }
        let mut lifted = vec![1; rank - dims.len()];
        lifted.extend(dims);
        self.reshape(&lifted)
    }
}

/// A scalar of a shape computation or a constant (ONNX's rank-0 tensors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Scalar {
    Int(i64),
    Float(f64),
}

impl Scalar {
    pub(super) fn as_f64(self) -> f64 {
        match self {
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }
}

/// A value flowing along a graph edge.
#[derive(Debug, Clone)]
pub(super) enum Value<B: Backend> {
    /// A float tensor on the device.
    Tensor(Dyn<B>),
    /// A tensor shape (the output of `Shape` and the arithmetic on it), on the host.
    Shape(Vec<i64>),
    /// A scalar, on the host.
    Scalar(Scalar),
    /// An integer tensor constant, on the host (indices, axes, sizes read by the ops).
    Ints(Vec<i64>, Vec<usize>),
}

impl<B: Backend> Value<B> {
    /// What the value is, for error messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Value::Tensor(t) => format!("a float tensor of shape {:?}", t.dims()),
            Value::Shape(s) => format!("a shape {s:?}"),
            Value::Scalar(s) => format!("the scalar {s:?}"),
            Value::Ints(v, dims) => format!("an integer tensor of shape {dims:?} ({} values)", v.len()),
        }
    }
}

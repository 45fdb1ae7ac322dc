//! A float32 tensor as raw little-endian bytes: what the `safetensors` crate needs to serialise
//! a tensor (its `View` trait), shared by checkpoint and classifier writers.

use candle_core::Tensor;

use crate::error::Result;

/// A float32 tensor's shape and little-endian bytes.
#[derive(Debug, Clone)]
pub struct F32View {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl F32View {
    /// From row-major values and their shape (the product of `shape` must be `values.len()`).
    pub fn new(shape: Vec<usize>, values: &[f32]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        F32View {
            shape,
            data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// From a candle tensor (any device; converted to f32 values on the host).
    pub fn of_tensor(t: &Tensor) -> Result<Self> {
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        Ok(F32View::new(t.dims().to_vec(), &v))
    }
}

impl safetensors::View for F32View {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

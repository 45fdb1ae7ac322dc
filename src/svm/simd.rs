//! The two dense kernels of the coordinate-descent solver, `dot(a, b)` and `y += alpha * x`, for
//! `f32` and `f64`, written so that LLVM vectorises them.
//!
//! The dot product keeps 16 independent partial sums (lane-wise, so vectorising them does not
//! reorder any floating-point operation) and adds them up in a fixed order. On x86-64
//! the same source is also compiled with AVX2 enabled and chosen at run time; because the
//! arithmetic is identical lane by lane (no FMA contraction), both paths give bit-identical
//! results, so a fit is reproducible across machines for a given seed.

/// Floating-point types the linear SVM works in (`f32` and `f64`). Sealed: it exists so the
/// solver can call vectorised kernels for either type.
pub trait SvmFloat: linfa::Float + sealed::Sealed {
    /// `sum_i a[i] * b[i]`; `a` and `b` must have the same length.
    fn dot(a: &[Self], b: &[Self]) -> Self;
    /// `y[i] += alpha * x[i]`; `x` and `y` must have the same length.
    fn axpy(alpha: Self, x: &[Self], y: &mut [Self]);
    /// Conversion to `f64` (exact).
    fn as_f64(self) -> f64;
    /// Conversion from `f64` (rounding to nearest for `f32`).
    fn of_f64(v: f64) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

const LANES: usize = 16;

#[inline(always)]
fn dot_body<T>(a: &[T], b: &[T]) -> T
where
    T: Copy + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    assert_eq!(a.len(), b.len());
    let mut acc = [T::default(); LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s = *s + x * y;
        }
    }
    let mut tail = T::default();
    for (&x, &y) in ra.iter().zip(rb) {
        tail = tail + x * y;
    }
    // A sequential reduction: a pairwise tree here makes LLVM's SLP vectoriser pick 2-lane
    // vectors for the whole loop (checked in the assembly), a sequential one keeps full width.
    let mut sum = T::default();
    for v in acc {
        sum = sum + v;
    }
    sum + tail
}

#[inline(always)]
fn axpy_body<T>(alpha: T, x: &[T], y: &mut [T])
where
    T: Copy + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    assert_eq!(x.len(), y.len());
    let mut cy = y.chunks_exact_mut(LANES);
    let mut cx = x.chunks_exact(LANES);
    for (yy, xx) in (&mut cy).zip(&mut cx) {
        for (y, &x) in yy.iter_mut().zip(xx) {
            *y = *y + alpha * x;
        }
    }
    for (yy, &xx) in cy.into_remainder().iter_mut().zip(cx.remainder()) {
        *yy = *yy + alpha * xx;
    }
}

macro_rules! impl_svm_float {
    ($t:ty, $dot_avx2:ident, $axpy_avx2:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $dot_avx2(a: &[$t], b: &[$t]) -> $t {
            dot_body(a, b)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $axpy_avx2(alpha: $t, x: &[$t], y: &mut [$t]) {
            axpy_body(alpha, x, y)
        }

        impl SvmFloat for $t {
            #[inline]
            fn dot(a: &[$t], b: &[$t]) -> $t {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { $dot_avx2(a, b) };
                }
                dot_body(a, b)
            }

            #[inline]
            fn axpy(alpha: $t, x: &[$t], y: &mut [$t]) {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { $axpy_avx2(alpha, x, y) };
                }
                axpy_body(alpha, x, y)
            }

            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }

            #[inline]
            fn of_f64(v: f64) -> $t {
                v as $t
            }
        }
    };
}

impl_svm_float!(f32, dot_avx2_f32, axpy_avx2_f32);
impl_svm_float!(f64, dot_avx2_f64, axpy_avx2_f64);

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> (Vec<f64>, Vec<f64>) {
        let a = (0..n).map(|i| ((i * 7 % 13) as f64 - 6.0) / 8.0).collect();
        let b = (0..n).map(|i| ((i * 5 % 11) as f64 - 5.0) / 4.0).collect();
        (a, b)
    }

    #[test]
    fn dot_and_axpy_match_naive() {
        // Lengths around the 16-lane chunking: empty, tail only, exact, chunk + tail.
        for n in [0, 1, 15, 16, 17, 33, 4096 + 5] {
            let (a, b) = data(n);
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            // Inputs are multiples of 1/32 with small numerators: every product and partial sum
            // is exact in f64, so any summation order gives the same value.
            assert_eq!(f64::dot(&a, &b), naive, "n = {n}");
            let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
            let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
            assert_eq!(f32::dot(&a32, &b32) as f64, naive, "n = {n}");

            let mut y = b.clone();
            f64::axpy(0.5, &a, &mut y);
            for i in 0..n {
                assert_eq!(y[i], b[i] + 0.5 * a[i]);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_path_is_bit_identical() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        // Values whose sums do round, so the order of operations matters.
        let a: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.11).cos() * 1e3).collect();
        let portable = dot_body(&a, &b);
        // SAFETY: AVX2 checked above.
        let fast = unsafe { dot_avx2_f32(&a, &b) };
        assert_eq!(portable.to_bits(), fast.to_bits());
        let mut y1 = b.clone();
        let mut y2 = b.clone();
        axpy_body(0.3f32, &a, &mut y1);
        // SAFETY: AVX2 checked above.
        unsafe { axpy_avx2_f32(0.3, &a, &mut y2) };
        assert_eq!(y1, y2);
    }
}

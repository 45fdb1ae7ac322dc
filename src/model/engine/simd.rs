//! A small vector type for the fast engine's element-wise passes (Winograd transforms, bias,
//! ReLU, bf16 rounding), so that one generic source compiles to AVX-512 registers on CPUs that
//! have them and to plain arrays (which the compiler vectorises for AVX2 or the baseline)
//! elsewhere. Hand-written because the portable SIMD types of `std` are not stable and the
//! crates that offer them would be a dependency for a dozen operations.

use half::bf16;

/// f32 lanes. Every method is `unsafe` because the AVX-512 implementation needs the CPU
/// feature (callers run inside a `#[target_feature]` function chosen at run time) and the
/// loads and stores take raw pointers.
pub trait Vf: Copy {
    /// Lanes per vector.
    const LANES: usize;
    /// All zeros.
    unsafe fn zero() -> Self;
    /// `n <= LANES` values from `p`, the rest zero.
    unsafe fn load(p: *const f32, n: usize) -> Self;
    /// The first `n <= LANES` lanes to `p`.
    unsafe fn store(self, p: *mut f32, n: usize);
    /// The first `n <= LANES` lanes to `p` as bf16, rounded to nearest even.
    unsafe fn store_bf16(self, p: *mut bf16, n: usize);
    /// `self + o`.
    unsafe fn add(self, o: Self) -> Self;
    /// `self - o`.
    unsafe fn sub(self, o: Self) -> Self;
    /// `self + s * o`.
    unsafe fn axpy(self, s: f32, o: Self) -> Self;
    /// `max(self, 0)`.
    unsafe fn relu(self) -> Self;
    /// Lane-wise maximum.
    unsafe fn max(self, o: Self) -> Self;
}

/// Eight f32 lanes in an array: the portable implementation.
#[derive(Clone, Copy)]
pub struct Arr(pub [f32; 8]);

impl Arr {
    /// Lane by lane `f(self, o)`.
    #[inline(always)]
    fn zip(self, o: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let mut r = self.0;
        for (a, b) in r.iter_mut().zip(o.0) {
            *a = f(*a, b);
        }
        Arr(r)
    }
}

impl Vf for Arr {
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Arr([0.0; 8])
    }

    #[inline(always)]
    unsafe fn load(p: *const f32, n: usize) -> Self {
        let mut a = [0.0; 8];
        if n == 8 {
            // SAFETY: the caller promises 8 readable values.
            a = unsafe { p.cast::<[f32; 8]>().read_unaligned() };
        } else {
            for (i, v) in a.iter_mut().enumerate().take(n) {
                // SAFETY: the caller promises n readable values.
                *v = unsafe { *p.add(i) };
            }
        }
        Arr(a)
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, n: usize) {
        if n == 8 {
            // SAFETY: the caller promises 8 writable values.
            unsafe { p.cast::<[f32; 8]>().write_unaligned(self.0) };
        } else {
            for (i, v) in self.0.iter().enumerate().take(n) {
                // SAFETY: the caller promises n writable values.
                unsafe { *p.add(i) = *v };
            }
        }
    }

    #[inline(always)]
    unsafe fn store_bf16(self, p: *mut bf16, n: usize) {
        for (i, v) in self.0.iter().enumerate().take(n) {
            // SAFETY: the caller promises n writable values.
            unsafe { *p.add(i) = bf16::from_f32(*v) };
        }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        self.zip(o, |a, b| a + b)
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        self.zip(o, |a, b| a - b)
    }

    #[inline(always)]
    unsafe fn axpy(self, s: f32, o: Self) -> Self {
        self.zip(o, |a, b| a + s * b)
    }

    #[inline(always)]
    unsafe fn relu(self) -> Self {
        self.zip(self, |a, _| a.max(0.0))
    }

    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        self.zip(o, f32::max)
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Z, Zb};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::bf16;

    use super::Vf;

    /// Sixteen f32 lanes in an AVX-512 register (needs AVX-512F and AVX-512BW).
    #[derive(Clone, Copy)]
    pub struct Z(__m512);

    #[inline(always)]
    fn mask(n: usize) -> u16 {
        if n >= 16 { u16::MAX } else { (1u16 << n) - 1 }
    }

    /// Stores the first `n` of 16 bf16 values in `h` at `p`.
    ///
    /// # Safety
    /// `p` has `n` writable values; the CPU has AVX-512BW.
    #[inline(always)]
    unsafe fn store_halves(p: *mut bf16, n: usize, h: __m256i) {
        // SAFETY: the contract above.
        unsafe {
            if n == 16 {
                _mm256_storeu_si256(p.cast(), h)
            } else {
                _mm256_mask_storeu_epi16(p.cast(), mask(n), h)
            }
        }
    }

    // SAFETY (every method): the callers run with AVX-512F/BW (checked at run time before the
    // `#[target_feature]` function holding the inlined code is called), and keep the pointers'
    // promises stated on the trait.
    impl Vf for Z {
        const LANES: usize = 16;

        #[inline(always)]
        unsafe fn zero() -> Self {
            unsafe { Z(_mm512_setzero_ps()) }
        }

        #[inline(always)]
        unsafe fn load(p: *const f32, n: usize) -> Self {
            unsafe {
                if n == 16 {
                    Z(_mm512_loadu_ps(p))
                } else {
                    Z(_mm512_maskz_loadu_ps(mask(n), p))
                }
            }
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32, n: usize) {
            unsafe {
                if n == 16 {
                    _mm512_storeu_ps(p, self.0)
                } else {
                    _mm512_mask_storeu_ps(p, mask(n), self.0)
                }
            }
        }

        #[inline(always)]
        unsafe fn store_bf16(self, p: *mut bf16, n: usize) {
            unsafe {
                // Round to nearest even in the integer domain (AVX-512F), NaNs made quiet.
                let b = _mm512_castps_si512(self.0);
                let lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
                let r = _mm512_srli_epi32(
                    _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), lsb),
                    16,
                );
                let nan = _mm512_cmp_ps_mask(self.0, self.0, _CMP_UNORD_Q);
                let q = _mm512_or_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(0x40));
                let r = _mm512_mask_blend_epi32(nan, r, q);
                store_halves(p, n, _mm512_cvtepi32_epi16(r))
            }
        }

        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            unsafe { Z(_mm512_add_ps(self.0, o.0)) }
        }

        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            unsafe { Z(_mm512_sub_ps(self.0, o.0)) }
        }

        #[inline(always)]
        unsafe fn axpy(self, s: f32, o: Self) -> Self {
            unsafe { Z(_mm512_fmadd_ps(_mm512_set1_ps(s), o.0, self.0)) }
        }

        #[inline(always)]
        unsafe fn relu(self) -> Self {
            unsafe { Z(_mm512_max_ps(self.0, _mm512_setzero_ps())) }
        }

        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            unsafe { Z(_mm512_max_ps(self.0, o.0)) }
        }
    }

    /// [`Z`] on a CPU with AVX512-BF16: bf16 stores through `vcvtneps2bf16`.
    #[derive(Clone, Copy)]
    pub struct Zb(Z);

    // SAFETY (every method): as for `Z`, with AVX512-BF16 too.
    impl Vf for Zb {
        const LANES: usize = 16;

        #[inline(always)]
        unsafe fn zero() -> Self {
            unsafe { Zb(Z::zero()) }
        }

        #[inline(always)]
        unsafe fn load(p: *const f32, n: usize) -> Self {
            unsafe { Zb(Z::load(p, n)) }
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32, n: usize) {
            unsafe { self.0.store(p, n) }
        }

        #[inline(always)]
        unsafe fn store_bf16(self, p: *mut bf16, n: usize) {
            unsafe {
                store_halves(
                    p,
                    n,
                    std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh((self.0).0)),
                )
            }
        }

        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            unsafe { Zb(self.0.add(o.0)) }
        }

        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            unsafe { Zb(self.0.sub(o.0)) }
        }

        #[inline(always)]
        unsafe fn axpy(self, s: f32, o: Self) -> Self {
            unsafe { Zb(self.0.axpy(s, o.0)) }
        }

        #[inline(always)]
        unsafe fn relu(self) -> Self {
            unsafe { Zb(self.0.relu()) }
        }

        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            unsafe { Zb(self.0.max(o.0)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_lanes_agree_with_the_portable_ones() {
        if !(std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw"))
        {
            eprintln!("skipped: the AVX-512 lanes (this CPU lacks AVX-512F/BW)");
            return;
        }
        let src: Vec<f32> = (0..16)
            .map(|i| (i as f32 - 7.3) * 1.37e-2 + 1e-40)
            .collect();
        let mut a = [0f32; 16];
        let mut b = [bf16::ZERO; 16];
        // SAFETY: AVX-512F/BW checked above; the buffers hold 16 values.
        unsafe {
            let z = Z::load(src.as_ptr(), 13);
            z.axpy(2.0, z)
                .sub(z)
                .add(z)
                .relu()
                .store(a.as_mut_ptr(), 16);
            Z::load(src.as_ptr(), 16).store_bf16(b.as_mut_ptr(), 15);
        }
        for i in 0..16 {
            let want = if i < 13 { (src[i] * 3.0).max(0.0) } else { 0.0 };
            assert!((a[i] - want).abs() <= 1e-6 * want.abs(), "{i}");
            let want = if i < 15 {
                bf16::from_f32(src[i])
            } else {
                bf16::ZERO
            };
            assert_eq!(b[i].to_bits(), want.to_bits(), "{i}");
        }
    }
}

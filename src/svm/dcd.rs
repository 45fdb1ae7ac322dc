//! liblinear's dual coordinate descent for L2-regularised linear SVMs (Hsieh, Chang, Lin, Keerthi
//! & Sundararajan, "A Dual Coordinate Descent Method for Large-scale Linear SVM", ICML 2008;
//! `solve_l2r_l1l2_svc` in liblinear's `linear.cpp`).
//!
//! The primal is `min_w 1/2 |w|^2 + C sum_i loss(1 - y_i w.x_i)` with `loss(t) = max(0, t)` (L1,
//! hinge) or `max(0, t)^2` (L2, squared hinge). Its dual,
//! `min_a 1/2 a'Qa - e'a, 0 <= a_i <= U` with `Q_ij = y_i y_j x_i.x_j + D_ii`, has `U = C, D = 0`
//! for L1 and `U = inf, D = 1/(2C)` for L2. Coordinate `i` is minimised in closed form,
//! `a_i <- clip(a_i - G/Q_ii, 0, U)` with `G = y_i w.x_i - 1 + D a_i`, and `w = sum_i a_i y_i x_i`
//! is maintained, so one update costs a dot product and an axpy on row `i`.
//!
//! As in liblinear: the bias is a constant feature `B` appended to every `x` (so its weight is
//! regularised); the coordinates are visited in a fresh random permutation every outer iteration;
//! optional shrinking drops bound coordinates whose projected gradient is beyond the previous
//! iteration's extremes, and re-checks everything before stopping; iteration stops when the spread
//! of projected gradients `max PG - min PG` falls to `eps` or after `max_iter` outer iterations.
//! The one difference is the random generator: ChaCha8 seeded from `(seed, stream)` rather than
//! C's `rand()`, so results are reproducible and independent of thread scheduling.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Loss;
use super::simd::SvmFloat;

/// Everything the solver needs besides the data; validated by the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DcdOptions {
    pub c: f64,
    pub loss: Loss,
    pub eps: f64,
    pub max_iter: usize,
    pub shrinking: bool,
    /// The constant feature `B` (0 = no bias).
    pub bias: f64,
    pub seed: u64,
    /// ChaCha stream, so that problems solved in parallel draw independent permutations.
    pub stream: u64,
}

/// The solution of one binary problem.
#[derive(Debug, Clone)]
pub(crate) struct DcdSolution<F> {
    /// Weight vector over the `d` features.
    pub w: Vec<F>,
    /// The bias term added to `w.x`: the bias feature's weight times `B`.
    pub bias: f64,
    /// Dual variables, one per training item (in the order of `rows`).
    pub alpha: Vec<f64>,
    /// Outer iterations run.
    pub iterations: usize,
    /// Whether the stopping criterion was met before `max_iter`.
    pub converged: bool,
}

impl<F: SvmFloat> DcdSolution<F> {
    /// liblinear's dual objective `1/2 a'Qa - e'a` (the primal minimum is its negative).
    #[cfg(test)]
    pub fn dual_objective(&self, o: &DcdOptions) -> f64 {
        let diag = match o.loss {
            Loss::Hinge => 0.0,
            Loss::SquaredHinge => 0.5 / o.c,
        };
        let wb = if o.bias > 0.0 {
            self.bias / o.bias
        } else {
            0.0
        };
        let ww: f64 = self.w.iter().map(|v| v.as_f64().powi(2)).sum::<f64>() + wb * wb;
        let a: f64 = self.alpha.iter().map(|a| a * (a * diag - 2.0)).sum();
        (ww + a) / 2.0
    }
}

/// Squared Euclidean norm of every row of the row-major `n x d` matrix `x`.
pub(crate) fn row_sq_norms<F: SvmFloat>(x: &[F], d: usize) -> Vec<f64> {
    if d == 0 {
        return vec![0.0; x.len()];
    }
    x.chunks_exact(d).map(|r| F::dot(r, r).as_f64()).collect()
}

/// Solves one binary problem on the rows `rows` of the row-major matrix `x` (`d` columns), with
/// `y[i]` in {-1, +1} the label of row `rows[i]` and `sq_norms` from [`row_sq_norms`] on all of
/// `x`.
pub(crate) fn solve<F: SvmFloat>(
    x: &[F],
    d: usize,
    sq_norms: &[f64],
    rows: &[usize],
    y: &[i8],
    o: &DcdOptions,
) -> DcdSolution<F> {
    debug_assert_eq!(rows.len(), y.len());
    let l = rows.len();
    let (diag, upper) = match o.loss {
        Loss::Hinge => (0.0, o.c),
        Loss::SquaredHinge => (0.5 / o.c, f64::INFINITY),
    };
    let b = o.bias;
    let qd: Vec<f64> = rows.iter().map(|&r| sq_norms[r] + b * b + diag).collect();
    let yf: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    let mut alpha = vec![0.0f64; l];
    let mut w = vec![F::zero(); d];
    let mut wb = 0.0f64;
    let mut index: Vec<usize> = (0..l).collect();
    let mut active = l;
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    rng.set_stream(o.stream);

    let mut pg_max_old = f64::INFINITY;
    let mut pg_min_old = f64::NEG_INFINITY;
    let mut iterations = 0;
    let mut converged = false;
    while iterations < o.max_iter {
        let mut pg_max_new = f64::NEG_INFINITY;
        let mut pg_min_new = f64::INFINITY;
        for i in 0..active {
            let j = rng.gen_range(i..active);
            index.swap(i, j);
        }
        let mut s = 0;
        while s < active {
            let i = index[s];
            let r = rows[i];
            let xi = &x[r * d..(r + 1) * d];
            let yi = yf[i];
            let g = yi * (F::dot(&w, xi).as_f64() + wb * b) - 1.0 + alpha[i] * diag;
            let mut pg = 0.0;
            if alpha[i] == 0.0 {
                if o.shrinking && g > pg_max_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                } else if g < 0.0 {
                    pg = g;
                }
            } else if alpha[i] == upper {
                if o.shrinking && g < pg_min_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                } else if g > 0.0 {
                    pg = g;
                }
            } else {
                pg = g;
            }
            pg_max_new = pg_max_new.max(pg);
            pg_min_new = pg_min_new.min(pg);
            if pg.abs() > 1e-12 && qd[i] > 0.0 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0).min(upper);
                let delta = (alpha[i] - old) * yi;
                F::axpy(F::of_f64(delta), xi, &mut w);
                wb += delta * b;
            }
            s += 1;
        }
        iterations += 1;
        if pg_max_new - pg_min_new <= o.eps {
            if active == l {
                converged = true;
                break;
            }
            // Converged on the shrunk set: re-check every coordinate before stopping.
            active = l;
            pg_max_old = f64::INFINITY;
            pg_min_old = f64::NEG_INFINITY;
            continue;
        }
        pg_max_old = if pg_max_new <= 0.0 {
            f64::INFINITY
        } else {
            pg_max_new
        };
        pg_min_old = if pg_min_new >= 0.0 {
            f64::NEG_INFINITY
        } else {
            pg_min_new
        };
    }
    DcdSolution {
        w,
        bias: wb * b,
        alpha,
        iterations,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::RngCore;

    /// A seeded noisy two-class problem: `n x d`, labels from a random hyperplane with 10% flipped.
    pub(crate) fn noisy_problem(n: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<i8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut u = || (rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0;
        let dir: Vec<f64> = (0..d).map(|_| u()).collect();
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let row: Vec<f64> = (0..d).map(|_| u()).collect();
            let s: f64 = row.iter().zip(&dir).map(|(a, b)| a * b).sum::<f64>() + 0.3;
            let flip = i % 10 == 3;
            y.push(if (s > 0.0) != flip { 1 } else { -1 });
            x.extend(row);
        }
        (x, y)
    }

    fn opts(loss: Loss, c: f64, shrinking: bool) -> DcdOptions {
        DcdOptions {
            c,
            loss,
            eps: 1e-6,
            max_iter: 100_000,
            shrinking,
            bias: 1.0,
            seed: 7,
            stream: 0,
        }
    }

    /// Primal objective `1/2 (|w|^2 + wb^2) + C sum loss(1 - y f(x))`.
    fn primal(sol: &DcdSolution<f64>, x: &[f64], d: usize, y: &[i8], o: &DcdOptions) -> f64 {
        let wb = sol.bias / o.bias;
        let reg = 0.5 * (sol.w.iter().map(|v| v * v).sum::<f64>() + wb * wb);
        let loss: f64 = x
            .chunks_exact(d)
            .zip(y)
            .map(|(r, &yi)| {
                let f = f64::dot(&sol.w, r) + sol.bias;
                let t = (1.0 - f64::from(yi) * f).max(0.0);
                match o.loss {
                    Loss::Hinge => t,
                    Loss::SquaredHinge => t * t,
                }
            })
            .sum();
        reg + o.c * loss
    }

    #[test]
    fn kkt_and_zero_duality_gap() {
        let (n, d) = (120, 8);
        let (x, y) = noisy_problem(n, d, 1);
        let norms = row_sq_norms(&x, d);
        let rows: Vec<usize> = (0..n).collect();
        for loss in [Loss::Hinge, Loss::SquaredHinge] {
            for shrinking in [false, true] {
                let o = opts(loss, 0.7, shrinking);
                let sol = solve(&x, d, &norms, &rows, &y, &o);
                assert!(sol.converged, "{loss:?} shrinking={shrinking}");
                // Strong duality: primal minimum = -dual minimum.
                let p = primal(&sol, &x, d, &y, &o);
                let dual = sol.dual_objective(&o);
                assert!(
                    (p + dual).abs() < 1e-4 * p,
                    "{loss:?}: primal {p} dual {dual}"
                );
                // w = sum a_i y_i x_i and the bias weight = sum a_i y_i B.
                let mut w = vec![0.0; d];
                let mut wb = 0.0;
                for (i, r) in x.chunks_exact(d).enumerate() {
                    f64::axpy(sol.alpha[i] * f64::from(y[i]), r, &mut w);
                    wb += sol.alpha[i] * f64::from(y[i]) * o.bias;
                }
                for (a, b) in w.iter().zip(&sol.w) {
                    assert!((a - b).abs() < 1e-9);
                }
                assert!((wb - sol.bias).abs() < 1e-9);
                // KKT for L1: a = 0 => margin >= 1; 0 < a < C => margin = 1; a = C => margin <= 1.
                if loss == Loss::Hinge {
                    for (i, r) in x.chunks_exact(d).enumerate() {
                        let m = f64::from(y[i]) * (f64::dot(&sol.w, r) + sol.bias);
                        let a = sol.alpha[i];
                        if a == 0.0 {
                            assert!(m >= 1.0 - 1e-5, "a=0, margin {m}");
                        } else if a == o.c {
                            assert!(m <= 1.0 + 1e-5, "a=C, margin {m}");
                        } else {
                            assert!((m - 1.0).abs() < 1e-5, "free a, margin {m}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shrinking_reaches_the_same_optimum() {
        let (n, d) = (150, 10);
        let (x, y) = noisy_problem(n, d, 2);
        let norms = row_sq_norms(&x, d);
        let rows: Vec<usize> = (0..n).collect();
        let a = solve(
            &x,
            d,
            &norms,
            &rows,
            &y,
            &opts(Loss::SquaredHinge, 2.0, false),
        );
        let b = solve(
            &x,
            d,
            &norms,
            &rows,
            &y,
            &opts(Loss::SquaredHinge, 2.0, true),
        );
        // The primal solution is unique (strictly convex), so both must agree closely.
        for (p, q) in a.w.iter().zip(&b.w) {
            assert!((p - q).abs() < 1e-4, "{p} vs {q}");
        }
        assert!((a.bias - b.bias).abs() < 1e-4);
    }

    #[test]
    fn seeded_and_row_subsets() {
        let (n, d) = (100, 6);
        let (x, y) = noisy_problem(n, d, 3);
        let norms = row_sq_norms(&x, d);
        let mut o = opts(Loss::Hinge, 1.0, true);
        o.eps = 0.1;
        let rows: Vec<usize> = (0..n).collect();
        let s1 = solve(&x, d, &norms, &rows, &y, &o);
        let s2 = solve(&x, d, &norms, &rows, &y, &o);
        assert_eq!(s1.w, s2.w, "same seed, same result");
        o.seed = 8;
        let s3 = solve(&x, d, &norms, &rows, &y, &o);
        assert_ne!(s1.w, s3.w, "a loose eps stops at a seed-dependent point");

        // Solving on a subset of rows equals solving on a copy of those rows.
        let sub: Vec<usize> = (0..n).filter(|i| i % 3 != 0).collect();
        let ysub: Vec<i8> = sub.iter().map(|&i| y[i]).collect();
        let xsub: Vec<f64> = sub
            .iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
            .collect();
        let nsub = row_sq_norms(&xsub, d);
        let rsub: Vec<usize> = (0..sub.len()).collect();
        let a = solve(&x, d, &norms, &sub, &ysub, &o);
        let b = solve(&xsub, d, &nsub, &rsub, &ysub, &o);
        assert_eq!(a.w, b.w);
        assert_eq!(a.bias, b.bias);
    }

    #[test]
    fn no_bias_and_max_iter() {
        let (n, d) = (80, 5);
        let (x, y) = noisy_problem(n, d, 4);
        let norms = row_sq_norms(&x, d);
        let rows: Vec<usize> = (0..n).collect();
        let mut o = opts(Loss::Hinge, 10.0, false);
        o.bias = 0.0;
        let s = solve(&x, d, &norms, &rows, &y, &o);
        assert_eq!(s.bias, 0.0);
        o.max_iter = 1;
        o.eps = 1e-12;
        let s = solve(&x, d, &norms, &rows, &y, &o);
        assert_eq!(s.iterations, 1);
        assert!(!s.converged);
    }
}

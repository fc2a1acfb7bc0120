//! Raw CPU kernels shared by the fused layer op ([`super::linear`]), the first-order MLP tape
//! ([`super::tape`]) and the curvature products ([`super::rop`]): matrix products by the
//! `gemm` crate (the one Candle's CPU backend calls) straight into our own buffers, and the
//! element-wise passes around them.
//!
//! Why not Candle's `matmul`: it zero-fills every output before the product overwrites it,
//! and every tensor that a backward pass produces is then added to a zero-filled gradient
//! slot. On a 256×256 SAC update those passes cost a few per cent of the update.

use candle_core::WithDType;

thread_local! {
    /// Set while this thread runs one branch of [`join`]: its products stay on it.
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `a` and `b`, in parallel when Candle's matrix products may use more than one thread
/// (each branch then keeps its own products on its thread), else one after the other.
///
/// Why: the SAC update's twin critics are independent networks of the same size. Splitting
/// the heads between the threads is one hand-off per pair of networks; splitting every
/// product instead is one per product, and the products of a 256-wide network are too
/// short to pay for it (on 2 cores the update got no faster that way). The results do not
/// depend on which thread runs a branch.
pub(crate) fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if SERIAL.with(|s| s.get()) || candle_core::utils::get_num_threads() <= 1 {
        return (a(), b());
    }
    rayon::join(|| serial(a), || serial(b))
}

/// Runs `f` with this thread's products kept on it (restored on exit, also on unwind).
fn serial<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|s| s.replace(true)));
    f()
}

/// Products smaller than this many multiply-adds stay on one thread: splitting them costs
/// more in hand-offs than it saves (a 128×128×128 product is 2 Mi; 256³ is 16 Mi).
const PARALLEL_MIN_MACS: usize = 1 << 22;

/// `gemm`'s parallelism for an `m×k · k×n` product at Candle's current thread count.
fn parallelism((m, n, k): (usize, usize, usize)) -> gemm::Parallelism {
    let threads = candle_core::utils::get_num_threads();
    if threads > 1 && !SERIAL.with(|s| s.get()) && m * n * k >= PARALLEL_MIN_MACS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// Checks that `A[m×k]` (row stride `a_rs`, column stride `a_cs`) and `B[k×n]` lie in their
/// slices.
fn check_operands<T>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    (a_rs, a_cs): (usize, usize),
    b: &[T],
    (b_rs, b_cs): (usize, usize),
) {
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(k == 0 || n == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
}

/// `dst[m×n] (+)= A[m×k] · B[k×n]` for operands with the given (row, column) strides (`dst`
/// contiguous, row stride `n`); `accumulate` adds to `dst`, else its contents are ignored.
pub(crate) fn gemm_into<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    accumulate: bool,
    a: &[T],
    a_strides: (usize, usize),
    b: &[T],
    b_strides: (usize, usize),
) {
    assert!(dst.len() >= m * n, "gemm_into: destination too small");
    check_operands((m, n, k), a, a_strides, b, b_strides);
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::zero());
        }
        return;
    }
    // SAFETY: the asserts above keep every read of `a` (i·a_rs + p·a_cs, i < m, p < k) and
    // `b` (p·b_rs + j·b_cs) and every write of `dst` (i·n + j) in bounds. With
    // `read_dst = false` gemm ignores the old contents of `dst`.
    unsafe {
        raw_gemm(
            (m, n, k),
            dst.as_mut_ptr(),
            accumulate,
            a,
            a_strides,
            b,
            b_strides,
        )
    }
}

/// `A[m×k] · B[k×n]` into a new row-major buffer, written once by the product (no zero fill).
pub(crate) fn gemm_new<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    a_strides: (usize, usize),
    b: &[T],
    b_strides: (usize, usize),
) -> Vec<T> {
    check_operands((m, n, k), a, a_strides, b, b_strides);
    let len = m * n;
    if k == 0 || len == 0 {
        return vec![T::zero(); len];
    }
    let mut dst: Vec<T> = Vec::with_capacity(len);
    // SAFETY: operands in bounds (checked above); `dst` has capacity m·n and gemm with
    // `read_dst = false` writes each of its m·n elements without reading any, so all of them
    // are initialised before `set_len`.
    unsafe {
        raw_gemm(
            (m, n, k),
            dst.as_mut_ptr(),
            false,
            a,
            a_strides,
            b,
            b_strides,
        );
        dst.set_len(len);
    }
    dst
}

/// # Safety
/// `dst` must be valid for m·n writes (and reads if `accumulate`), row stride `n`; the
/// operands must be in bounds for their strides; k > 0.
unsafe fn raw_gemm<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    accumulate: bool,
    a: &[T],
    (a_rs, a_cs): (usize, usize),
    b: &[T],
    (b_rs, b_cs): (usize, usize),
) {
    // SAFETY: forwarded to the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism((m, n, k)),
        );
    }
}

/// `z ← act(z + b)` row by row for `z [rows, b.len()]`, in one pass; `relu` clamps negatives
/// to 0 with a select (vectorises; NaN stays NaN, so divergence stays visible).
pub(crate) fn bias_act_in_place<T: WithDType>(z: &mut [T], bias: &[T], relu: bool) {
    let zero = T::zero();
    if bias.is_empty() {
        return;
    }
    for row in z.chunks_exact_mut(bias.len()) {
        if relu {
            for (v, &b) in row.iter_mut().zip(bias) {
                let s = *v + b;
                *v = if s < zero { zero } else { s };
            }
        } else {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

/// `g ← g · 1[h > 0]`: the ReLU's backward in place, `h` its output.
pub(crate) fn relu_mask_in_place<T: WithDType>(g: &mut [T], h: &[T]) {
    let zero = T::zero();
    for (g, &h) in g.iter_mut().zip(h) {
        *g = if h > zero { *g } else { zero };
    }
}

/// Sum over the rows of a row-major `[m, n]` matrix with row stride `rs` and column stride
/// `cs` (the bias gradient), row by row so that the inner loop is contiguous when `cs = 1`.
pub(crate) fn column_sum_strided<T: WithDType>(
    v: &[T],
    (m, n): (usize, usize),
    (rs, cs): (usize, usize),
) -> Vec<T> {
    let mut acc = vec![T::zero(); n];
    for i in 0..m {
        let row = i * rs;
        if cs == 1 {
            for (a, x) in acc.iter_mut().zip(&v[row..row + n]) {
                *a += *x;
            }
        } else {
            for (j, a) in acc.iter_mut().enumerate() {
                *a += v[row + j * cs];
            }
        }
    }
    acc
}

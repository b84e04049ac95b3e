"""The own matrix products (kernels/cpu/gemm.py, simd.py) against float64 NumPy.

Shapes cross every tile edge: 4- and 8-row tiles with row tails, one- and two-vector column
panels with masked tails, ``A @ B.T``'s packing chunks (more than one chunk along the
reduction), empty dimensions, one-row products (own code; BLAS for ``A @ B.T``) and the BLAS size threshold.
"""
import numpy as np
import pytest
from numba import njit

from fastbp.kernels.cpu import gemm
from fastbp.kernels.cpu.simd import SCRATCH, lanes, transpose_block

DTYPES = [np.float32, np.float64]
# (M, K, N) for out (M, N) = A (M, K) @ B (K, N); the same letters for the other two forms
SHAPES = [(0, 3, 5), (3, 0, 5), (3, 5, 0), (1, 64, 128), (2, 3, 1), (4, 7, 16), (5, 9, 17),
          (7, 33, 31), (8, 10, 128), (9, 64, 33), (13, 17, 47), (32, 64, 128), (33, 65, 127),
          (12, 600, 20), (6, 1100, 40)]
PAD = 40
SENTINEL = 12345.0


def _in_buffer(rng, shape, dtype):
    """A C-contiguous array inside a larger buffer whose borders hold SENTINEL."""
    size = int(np.prod(shape))
    buf = np.full(size + 2 * PAD, SENTINEL, dtype)
    arr = buf[PAD:PAD + size].reshape(shape)
    if rng is None:
        arr[...] = np.nan
    else:
        arr[...] = rng.standard_normal(shape)
    return buf, arr


def _check(got, want, dtype, k):
    tol = (np.finfo(dtype).eps * 8) * max(k, 1) ** 0.5
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _run(form, M, K, N, dtype, seed):
    rng = np.random.default_rng(seed)
    if form == "nn":
        _, A = _in_buffer(rng, (M, K), dtype)
        _, B = _in_buffer(rng, (K, N), dtype)
        want = A.astype(np.float64) @ B.astype(np.float64)
        fn = gemm.matmul
    elif form == "tn":
        _, A = _in_buffer(rng, (K, M), dtype)
        _, B = _in_buffer(rng, (K, N), dtype)
        want = A.astype(np.float64).T @ B.astype(np.float64)
        fn = gemm.matmul_tn
    else:
        _, A = _in_buffer(rng, (M, K), dtype)
        _, B = _in_buffer(rng, (N, K), dtype)
        want = A.astype(np.float64) @ B.astype(np.float64).T
        fn = gemm.matmul_nt
    buf, out = _in_buffer(None, (M, N), dtype)
    fn(A, B, out)
    return buf, out, want, (fn, A, B)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("form", ["nn", "tn", "nt"])
def test_product_matches_numpy_and_writes_only_out(form, shape, dtype):
    M, K, N = shape
    buf, out, want, _ = _run(form, M, K, N, dtype, seed=M * 10007 + K * 101 + N)
    _check(out, want, dtype, K)
    assert np.all(buf[:PAD] == SENTINEL) and np.all(buf[PAD + M * N:] == SENTINEL), \
        "wrote outside out"


@pytest.mark.parametrize("form", ["nn", "tn", "nt"])
def test_deterministic(form):
    _, out1, _, (fn, A, B) = _run(form, 37, 300, 45, np.float32, seed=3)
    out2 = np.empty_like(out1)
    fn(A, B, out2)
    assert np.array_equal(out1, out2)


@pytest.mark.parametrize("form", ["nn", "tn", "nt"])
def test_blas_threshold_paths_agree(form):
    """Just below and at the float32 BLAS threshold: both sides match NumPy."""
    side = round(gemm.BLAS_MIN_MACS_F32 ** (1 / 3))
    assert side ** 3 == gemm.BLAS_MIN_MACS_F32
    for M in (side - 1, side):
        _, out, want, _ = _run(form, M, side, side, np.float32, seed=M)
        _check(out, want, np.float32, side)


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")
def test_strided_views_fall_back_to_blas():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((20, 30))[:, ::2]          # not contiguous
    B = rng.standard_normal((15, 9))
    out = np.zeros((12, 9))[:10]                        # contiguous rows, a view
    gemm.matmul(A[:10], B, out)
    _check(out, A[:10] @ B, np.float64, 15)
    out_t = np.zeros((9, 10)).T                         # F-ordered output
    gemm.matmul(A[:10], B, out_t)
    _check(out_t, A[:10] @ B, np.float64, 15)


@njit
def _transpose(src, src_idx, src_ld, rows, cols, dst, dst_ld):
    transpose_block(src, src_idx, src_ld, rows, cols, dst, 0, dst_ld)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,cols", [(0, 5), (1, 1), (3, 16), (16, 3), (5, 7), (16, 16)])
def test_transpose_block(dtype, rows, cols):
    lanes = 16 if dtype == np.float32 else 8
    rows, cols = min(rows, lanes), min(cols, lanes)
    rng = np.random.default_rng(rows * 31 + cols)
    ld = 21
    src = rng.standard_normal(lanes * ld + 3).astype(dtype)
    dst = np.full(lanes * 24, np.nan, dtype)
    _transpose(src, 2, ld, rows, cols, dst, 24)
    block = np.zeros((lanes, lanes), dtype)
    for r in range(rows):
        block[r, :cols] = src[2 + r * ld: 2 + r * ld + cols]
    got = dst.reshape(lanes, 24)[:, :lanes]
    assert np.array_equal(got, block.T)
    assert np.all(np.isnan(dst.reshape(lanes, 24)[:, lanes:]))


def test_scratch_holds_a_packing_chunk():
    # matmul_nt's chunk along the reduction is SCRATCH // (2 lanes): at least 128 columns
    assert SCRATCH // 32 >= 128 and SCRATCH // 16 >= 128


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 300, 70), (130, 600, 260), (1024, 70, 100)])
@pytest.mark.parametrize("form", ["nn", "tn", "nt"])
def test_threaded_panels_match_numpy_and_one_thread(form, shape, dtype):
    """With threaded=True, products from PARALLEL_MIN_MACS up spread their panels over
    Numba's threads (packed blocks of the reduction; the second shape is past the one-thread
    BLAS threshold, so it runs own code only when threaded; in the third, ``A.T @ B``'s rows
    of A are gemm.ALIAS_BYTES apart, so it packs blocks of A too, with reduction and column
    tails): same result as NumPy, and the same bits with one thread or two (each output
    element has one owner and one order)."""
    import numba
    M, K, N = shape  # panel tails, and more than one packed block along the reduction
    assert M * K * N >= gemm.PARALLEL_MIN_MACS
    assert M * K * N < min(gemm.BLAS_MIN_MACS_F32_THREADED, gemm.BLAS_MIN_MACS_F64_THREADED)
    if shape[0] == 1024:
        assert (M * 4) % gemm.ALIAS_BYTES == 0 and K % gemm.TN_KC and N % 32
    rng = np.random.default_rng(11)
    A = rng.standard_normal((M, K) if form != "tn" else (K, M)).astype(dtype)
    B = rng.standard_normal((K, N) if form != "nt" else (N, K)).astype(dtype)
    fn = {"nn": gemm.matmul, "tn": gemm.matmul_tn, "nt": gemm.matmul_nt}[form]
    a, b = A.astype(np.float64), B.astype(np.float64)
    want = a.T @ b if form == "tn" else a @ (b.T if form == "nt" else b)
    threaded = np.full((M, N), np.nan, dtype)
    fn(A, B, threaded, True)
    _check(threaded, want, dtype, K)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single = np.empty_like(threaded)
        fn(A, B, single, True)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(threaded, single)


@pytest.mark.parametrize("form", ["matmul", "matmul_tn", "matmul_nt"])
def test_threaded_code_compiled_only_when_asked(form):
    """``threaded`` left out (None): the specialisation references no threaded panel
    function, so a cold compile of a small network's training never builds them; a bool flag
    does reference them (float32 and float64). Fresh uncached copies of the products, so
    their LLVM IR can be inspected."""
    fresh = njit(getattr(gemm, form).py_func)
    A = np.ones((4, 4), np.float32)
    fresh(A, A, np.empty_like(A))
    fresh(A, A, np.empty_like(A), None)
    fresh(A.astype(np.float64), A.astype(np.float64), np.empty((4, 4)))
    fresh(A, A, np.empty_like(A), True)
    fresh(A.astype(np.float64), A.astype(np.float64), np.empty((4, 4)), True)
    irs = fresh.inspect_llvm()
    assert len(irs) == 5
    threaded = [sig for sig, ir in irs.items() if "panels_parallel" in ir]
    assert len(threaded) == 2
    assert all(str(sig[3]) == "bool" for sig in threaded)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_layout, b_layout", [("C", "C"), ("F", "C"), ("C", "F"), ("F", "F")])
@pytest.mark.parametrize("M, K, N", [(5, 7, 3), (1, 9, 4), (6, 9, 1), (1, 9, 1), (6, 1, 1),
                                     (3, 0, 4), (1, 0, 3), (0, 3, 2), (4, 5, 0)])
def test_gemm_into_matches_numpy_for_every_layout(dtype, a_layout, b_layout, M, K, N):
    """The direct BLAS call the products use for large operands: every contiguous layout pair,
    one-row and one-column products (GEMV), and empty sides (BLAS needs leading dimensions of
    at least 1), against float64 NumPy."""
    from fastbp.kernels.cpu.gemm import _dot_into
    from numba import njit

    @njit
    def run(A, B, out):
        _dot_into(A, B, out)

    rng = np.random.default_rng(M * 100 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    A = np.asfortranarray(A) if a_layout == "F" else A
    B = np.asfortranarray(B) if b_layout == "F" else B
    out = np.full((M, N), np.nan, dtype)
    run(A, B, out)
    want = A.astype(np.float64) @ B.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol)


@pytest.mark.xdist_group("checked_threaded_fits")  # shares their callees (test_gradient_step.py)
def test_unthreaded_training_compiles_no_parallel_code():
    """``train_batches`` with ``threaded`` and ``checked`` left as None (every small network's
    fit) references none of the parallel functions (products, batch gather, update) nor the
    update check: each is pruned at compile time (``threaded is not None``), so a cold start
    never builds them. With the flags set the same driver does reference them. The unthreaded
    one from a fresh uncached copy of the driver, so its LLVM IR can be inspected; the threaded
    one from a checked fit's. With the network's ``uses`` (as every fit passes), so only its
    activations, loss and optimizer are compiled."""
    from fastbp.kernels.cpu import network as N
    from fastbp.kernels.cpu.uses import Uses

    fresh = njit(N.train_batches.py_func)
    rng = np.random.default_rng(0)
    sizes, codes = np.array([6, 5, 3]), np.array([3, 8])  # relu, softmax
    n_params = 6 * 5 + 5 * 3 + 5 + 3
    X, Y = rng.standard_normal((10, 6)).astype(np.float32), np.eye(3, dtype=np.float32)[[0] * 10]
    rows = 4
    args = [X, Y, np.arange(10), rows, 0, 3, sizes, codes, 2, np.zeros(n_params, np.float32),
            np.zeros(n_params, np.float32), np.zeros((1, n_params), np.float32), 0,
            np.zeros(N.N_HYPER), np.zeros(2, np.int64),
            np.zeros(rows * 14, np.float32), np.zeros(rows * 8, np.float32),
            np.zeros((2, rows * 5), np.float32), np.zeros((rows, 3), np.float32)]
    uses = Uses.for_network(codes, 2, 0)  # cross-entropy, SGD: the codes in args (and the
    # kernels most fits compile, so the callees come from the cache)
    fresh(*args, None, None, uses)
    markers = ("_parallel", "update_is_finite")
    ir = next(iter(fresh.inspect_llvm().values()))
    assert not [m for m in markers if m in ir]
    # the positive control: the same driver, threaded as the engine passes it for nets with
    # no streamed layer (an integer) and checked, as test_gradient_step's fits compile it (a
    # fresh copy would compile that driver a second time), read from the dispatcher's
    # linking module: its optimised IR, also where it was loaded from the cache
    from test_gradient_step import BATCH, SIZES, _data, _fit
    X, Y = _data(np.float32)
    assert _fit(SIZES, np.float32, "sgd", True, X, Y, BATCH, 1)[4]
    threaded_checked = [cres for sig, cres in N.train_batches.overloads.items()
                        if (str(sig[19]), str(sig[20])) == ("int64", "bool")]
    assert threaded_checked
    for cres in threaded_checked:
        ir = str(cres.library._get_module_for_linking())
        assert all(m in ir for m in markers), [m for m in markers if m not in ir]


@pytest.mark.parametrize("name, features, want", [
    ("icelake-server", "+sse2,+avx2,+fma,+avx512f,+avx512bw", True),
    ("sapphirerapids", "+avx512f,+avx512vl", True),
    ("znver5", "+avx2,+avx512f,+avx512bw", False),   # measured slower there
    ("znver4", "+avx2,+avx512f,+avx512bw", True),    # measured faster there
    ("znver3", "+avx2,+fma", False),
    ("haswell", "+avx2,+fma,-avx512f", False),       # no AVX-512: 16 accumulators don't fit
    ("generic", "", False)])
def test_eight_row_tiles_rule(name, features, want):
    assert gemm.eight_row_tiles_pay(name, features) is want


@njit
def _nn_tiles(a, b, c, M, K, N, tall):
    for j0 in range(0, N, 2 * lanes(a)):
        gemm._panel(a, 0, K, 1, b, j0, N, c, j0, N, M, K, N - j0, False, tall)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 10, 128), (13, 17, 47), (33, 65, 127), (64, 64, 64),
                                   (40, 30, 5), (35, 65, 10), (50, 20, 47)])
def test_eight_and_four_row_tiles_give_the_same_bits(shape, dtype):
    """``EIGHT_ROW_TILES`` differs between CPUs; the products must not: both tile heights
    give the same bits (one FMA chain per element, in reduction order) and NumPy's values.
    Only one height is compiled into the products on a given CPU, so both are called here
    through the panel itself. The last three shapes reach the one-vector branch (at most
    ``lanes`` output columns) with 16 rows or more: 16-row tiles when tall, else 8-row."""
    M, K, N = shape
    rng = np.random.default_rng(5)
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    four, eight = np.full((M, N), np.nan, dtype), np.full((M, N), np.nan, dtype)
    _nn_tiles(A.ravel(), B.ravel(), four.ravel(), M, K, N, False)
    _nn_tiles(A.ravel(), B.ravel(), eight.ravel(), M, K, N, True)
    assert np.array_equal(four, eight)
    _check(eight, A.astype(np.float64) @ B.astype(np.float64), dtype, K)

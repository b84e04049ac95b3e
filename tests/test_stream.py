"""Products of a few rows with a large matrix (kernels/cpu/stream.py), through gemm's
threaded ``matmul`` and ``matmul_nt``: against float64 NumPy, bit for bit against the
one-thread register tile (``A @ B``), the same bits over one thread or two, never compiled
into unthreaded specialisations, and whole training runs whose layers stream against the
NumPy reference loop."""
import numba
import numpy as np
import pytest
from numba import njit

import fastbp
from fastbp.kernels.cpu import gemm, stream
from fastbp.kernels.cpu.stream import streams

import reference as R
from test_gemm import PAD, SENTINEL, _check, _in_buffer
from test_training import _reference_fit

# (K, N): B at least STREAM_MIN_BYTES; N not a multiple of the lanes (a masked tail), K not
# a multiple of 4 (rows of B left after the groups of four); for A @ B.T the reduction
# (K here) leaves whole vectors after the groups of four vectors, and a masked tail
SIZES = {np.float32: [(515, 517), (530, 509)], np.float64: [(363, 365), (370, 359)]}
ROWS = [1, 2, 3, 5, 8]


def _b_shape(form, K, N):
    return (K, N) if form == "nn" else (N, K)


def _want(form, A, B):
    a, b = A.astype(np.float64), B.astype(np.float64)
    return a @ (b if form == "nn" else b.T)


def _fn(form):
    return gemm.matmul if form == "nn" else gemm.matmul_nt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M", ROWS)
@pytest.mark.parametrize("form", ["nn", "nt"])
def test_streamed_products_match_numpy_and_write_only_out(form, M, dtype):
    for K, N in SIZES[dtype]:
        like = np.empty(1, dtype)
        assert streams(M, K, N, like), "the shape does not stream: the test misses its path"
        rng = np.random.default_rng(M * 7 + K)
        _, A = _in_buffer(rng, (M, K), dtype)
        _, B = _in_buffer(rng, _b_shape(form, K, N), dtype)
        buf, out = _in_buffer(None, (M, N), dtype)
        _fn(form)(A, B, out, True)
        _check(out, _want(form, A, B), dtype, K)
        assert np.all(buf[:PAD] == SENTINEL) and np.all(buf[PAD + M * N:] == SENTINEL), \
            "wrote outside out"


@njit
def _tile_product(A, B, out):
    """``out = A @ B`` by the one-thread register tiles (gemm.matmul's path for products that
    neither stream nor go to BLAS)."""
    M, K = A.shape
    N = B.shape[1]
    a, b, c = A.ravel(), B.ravel(), out.ravel()
    W = 2 * gemm.lanes(a)
    for j0 in range(0, N, W):
        gemm._panel(a, 0, K, 1, b, j0, N, c, j0, N, M, K, N - j0, False, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streamed_a_at_b_has_the_register_tiles_bits(dtype):
    """Every output element is the tile's chain of multiply-adds in the same order, so the
    bits agree exactly (with NaN-free data)."""
    for M in ROWS:
        for K, N in SIZES[dtype]:
            rng = np.random.default_rng(M + N)
            A = rng.standard_normal((M, K)).astype(dtype)
            B = rng.standard_normal((K, N)).astype(dtype)
            got, want = np.empty((M, N), dtype), np.empty((M, N), dtype)
            gemm.matmul(A, B, got, True)
            _tile_product(A, B, want)
            assert np.array_equal(got, want), (M, K, N)


@pytest.mark.parametrize("form", ["nn", "nt"])
def test_streamed_products_same_bits_on_one_thread_or_two(form):
    """Each output element has one owner and one summation order, whatever the split. (The
    unthreaded call takes the register tiles or BLAS: close to NumPy, not the same bits.)"""
    M, K, N = 3, 1030, 1100
    assert streams(M, K, N, np.empty(1, np.float32))
    rng = np.random.default_rng(9)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal(_b_shape(form, K, N)).astype(np.float32)
    two = np.empty((M, N), np.float32)
    _fn(form)(A, B, two, True)
    _check(two, _want(form, A, B), np.float32, K)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = np.empty_like(two)
        _fn(form)(A, B, one, True)
    finally:
        numba.set_num_threads(before)
    serial = np.empty_like(two)
    _fn(form)(A, B, serial)
    _check(serial, _want(form, A, B), np.float32, K)
    assert np.array_equal(two, one)


@pytest.mark.parametrize("form", ["matmul", "matmul_nt"])
def test_streamed_code_compiled_only_when_threaded(form):
    """``threaded`` left out: the specialisation references no streamed task (a digits-sized
    net's cold compile stays as short as before); ``threaded=True`` does. Fresh uncached
    copies of the products, so their LLVM IR can be inspected."""
    fresh = njit(getattr(gemm, form).py_func)
    A = np.ones((4, 4), np.float32)
    fresh(A, A, np.empty_like(A))
    fresh(A, A, np.empty_like(A), True)
    fresh(A, A, np.empty_like(A), gemm.THREADED_NO_STREAM)
    irs = list(fresh.inspect_llvm().values())
    assert len(irs) == 3
    assert ["stream" in ir for ir in irs] == [False, True, False]


@pytest.mark.parametrize("form", ["nn", "nt"])
def test_no_stream_marker_threads_without_streaming(form):
    """``threaded=THREADED_NO_STREAM`` on a product that would stream (few rows, a 1 MiB B)
    takes the threaded panels instead: the float64 NumPy reference's values, as with
    ``threaded=True`` and None."""
    rng = np.random.default_rng(12)
    K, N = 512, 512
    A = rng.standard_normal((5, K)).astype(np.float32)
    B = rng.standard_normal(_b_shape(form, K, N)).astype(np.float32)
    assert streams(5, K, N, A), "the shape does not stream: the test misses its point"
    out = {}
    for threaded in (None, True, gemm.THREADED_NO_STREAM):
        out[threaded] = np.empty((5, N), np.float32)
        _fn(form)(A, B, out[threaded], threaded)
    want = _want(form, A, B)
    for got in out.values():
        _check(got, want, np.float32, K)


def test_stream_rule():
    f32, f64 = np.empty(1, np.float32), np.empty(1, np.float64)
    side = 512  # 512 x 512 float32 is exactly STREAM_MIN_BYTES
    assert side * side * 4 == stream.STREAM_MIN_BYTES
    assert streams(1, side, side, f32) and streams(stream.STREAM_MAX_ROWS, side, side, f32)
    assert not streams(stream.STREAM_MAX_ROWS + 1, side, side, f32)
    assert not streams(0, side, side, f32)
    assert not streams(1, side, side - 1, f32)
    assert streams(1, side, side // 2, f64) and not streams(1, side, side // 2 - 1, f64)


@pytest.mark.parametrize("M,N", [(1, 17), (1, 4096), (8, 1024), (8, 4096), (3, 65)])
def test_stream_width_fits_the_scratch(M, N):
    from fastbp.kernels.cpu.simd import SCRATCH
    for like, V in ((np.empty(1, np.float32), 16), (np.empty(1, np.float64), 8)):
        w = stream.nn_stream_width(M, N, like)
        assert w % V == 0 and w >= V
        assert M * (w + 2 * V) <= SCRATCH
        assert w * (64 // V) <= stream.STREAM_RUN_BYTES  # a run of B's row is at most a page
        quarter = -(-N // stream.STREAM_MIN_TASKS)  # STREAM_MIN_TASKS tasks, up to rounding
        assert w <= max(V, -(-quarter // V) * V)


# one worker for every case (README's ``--dist loadgroup``): cases share compiled drivers, which
# two workers would each compile at the same time (about 18 s twice in a cold run)
@pytest.mark.xdist_group("streamed_fits")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("recovery", ["snapshot", "checked"])
@pytest.mark.parametrize("batch", [1, 8])
def test_training_with_streamed_layers_matches_numpy_reference(batch, recovery, threads,
                                                               monkeypatch):
    """A net whose forward products (both hidden layers) and delta product (``W_2``) stream
    over Numba's threads, which such a layer asks for whatever the batch
    (``_threading.threaded_flag``), at batch 1 and at batch 8 (a last batch of 5); with one
    thread the same net takes the tiles (and BLAS for one-row ``A @ B.T``). Checked training
    takes the fused gradient step; the snapshot cases take the unchecked driver."""
    from fastbp import training
    # this net with its velocity (4.3 MB) is past SNAPSHOT_MAX_BYTES: by default checked, so
    # the snapshot cases raise the limit to take the unchecked driver
    monkeypatch.setattr(training, "SNAPSHOT_MAX_BYTES", 0 if recovery == "checked" else 1 << 30)
    sizes = [300, 450, 300, 3]
    like = np.empty(1, np.float64)
    assert streams(batch, 300, 450, like) and streams(batch, 450, 300, like)
    rng = np.random.default_rng(batch)
    n = 5 if batch == 1 else 21
    X, y = rng.standard_normal((n, sizes[0])), rng.integers(0, 3, n)
    net = fastbp.Network(sizes, activation="relu", dtype="float64", seed=3)
    opt = fastbp.SGD(lr=0.05, momentum=0.9)
    want = _reference_fit(net, X, R.onehot(y, 3), 2, batch, opt, [opt.lr] * 2)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        net.fit(X, y, epochs=2, batch_size=batch, optimizer=opt, shuffle=False)
    finally:
        numba.set_num_threads(before)
    assert bool(net._engine._fit_threaded) == (threads > 1)
    assert (net._engine._checked is True) == (recovery == "checked")
    for got, w in zip(net.weights + net.biases, want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)


def test_threaded_flag_for_a_streamed_layer():
    """A layer of at least STREAM_MIN_BYTES at a batch of at most STREAM_MAX_ROWS threads
    (when threads are allowed), though its products are below PARALLEL_MIN_MACS (past
    STREAM_MAX_ROWS rows, a 1 MiB float32 layer reaches PARALLEL_MIN_MACS anyway)."""
    from fastbp._threading import products_may_thread, threaded_flag
    if not products_may_thread():
        pytest.skip("threads not allowed here")
    assert 512 * 512 < gemm.PARALLEL_MIN_MACS and 512 * 512 * 4 == stream.STREAM_MIN_BYTES
    assert threaded_flag([512, 512, 10], 1, np.float32) is True
    assert threaded_flag([512, 512, 10], stream.STREAM_MAX_ROWS, np.float32) is True
    assert threaded_flag([512, 511, 10], 1, np.float32) is None  # below STREAM_MIN_BYTES
    assert threaded_flag([363, 363, 10], 1, np.float64) is True  # 1,054,152 bytes
    assert threaded_flag([363, 363, 10], 1, np.float32) is None
    assert threaded_flag([64, 128, 10], 1, np.float32) is None
    # threaded by its arithmetic, but no matrix can stream: the marker without streamed code
    assert threaded_flag([784, 256, 128, 10], 128, np.float32) == gemm.THREADED_NO_STREAM
    assert threaded_flag([784, 256, 128, 10], 128, np.float32) is not True
    assert threaded_flag([1024, 2048, 10], 256, np.float32) is True  # 8 MiB: streams at 8 rows

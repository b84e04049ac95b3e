"""Denormal numbers flushed to zero (FTZ/DAZ) during the CPU engine's compiled calls.

x86 only: elsewhere the mode does not exist and these tests are skipped (the feature is a
no-op there, documented in fastbp/_denormals.py).
"""
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbp
from fastbp._denormals import call_flushing, thread_modes
from fastbp.kernels.cpu import gemm
from fastbp.kernels.cpu.fpmode import FLUSH, set_thread_mode

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="the FTZ/DAZ mode is x86's MXCSR; a no-op on other processors")

TINY = np.float32(1e-39)  # a float32 denormal (the smallest normal is 1.18e-38)


def _mode():
    """The calling thread's mode, read without changing it."""
    mode = set_thread_mode(0)
    set_thread_mode(mode)
    return mode


@pytest.fixture(autouse=True)
def _restore_setting():
    before = fastbp.set_flush_denormals(True)  # each test starts from the default
    yield
    fastbp.set_flush_denormals(before)
    assert _mode() == 0  # no test may leave this thread flushing


def test_setting_returns_previous_and_rejects_non_bool():
    fastbp.set_flush_denormals(True)
    assert fastbp.set_flush_denormals(False) is True
    assert fastbp.flush_denormals() is False
    assert fastbp.set_flush_denormals(True) is False
    with pytest.raises(TypeError, match="enabled must be a bool"):
        fastbp.set_flush_denormals(1)


def test_thread_mode_round_trip():
    assert _mode() == 0
    assert set_thread_mode(FLUSH) == 0
    assert _mode() == FLUSH
    assert set_thread_mode(0) == FLUSH
    assert _mode() == 0
    # the arithmetic follows the mode: a product whose exact value is denormal
    a, b = np.full((1, 1), 1e-20, np.float32), np.full((1, 1), 1e-19, np.float32)
    out = np.empty((1, 1), np.float32)
    gemm.matmul(a, b, out)
    assert out[0, 0] == np.float32(np.float64(a[0, 0]) * np.float64(b[0, 0])) != 0
    saved = set_thread_mode(FLUSH)
    try:
        gemm.matmul(a, b, out)
    finally:
        set_thread_mode(saved)
    assert out[0, 0] == 0


def test_call_flushing_restores_the_mode_when_the_call_raises():
    def boom():
        assert _mode() == FLUSH
        raise ZeroDivisionError("inside")
    with pytest.raises(ZeroDivisionError):
        call_flushing(boom)
    assert _mode() == 0
    # a caller that flushes already keeps flushing
    set_thread_mode(FLUSH)
    try:
        call_flushing(lambda: None)
        assert _mode() == FLUSH
    finally:
        set_thread_mode(0)
    fastbp.set_flush_denormals(False)
    assert call_flushing(_mode) == 0


def _tiny_net():
    """2 -> 1 identity net, W = 1e-20, b = 0: output x . w, denormal for x ~ 1e-20."""
    net = fastbp.Network([2, 1], output="identity", loss="mse", dtype="float32", seed=0)
    net.set_parameters([np.full((2, 1), 1e-20)], [np.zeros(1)])
    return net


@pytest.mark.parametrize("flush", [True, False])
def test_forward_flushes_results_and_inputs(flush):
    fastbp.set_flush_denormals(flush)
    net = _tiny_net()
    X = np.array([[1e-20, 2e-20],     # exact result 3e-40: a denormal result (FTZ)
                  [1e-39, 0.0],       # a denormal input times 1e-20 (DAZ, and FTZ)
                  [1.0, 1.0]], np.float32)
    want = X.astype(np.float64) @ np.full((2, 1), np.float64(np.float32(1e-20)))
    got = net.forward(X)
    assert _mode() == 0
    if flush:
        np.testing.assert_array_equal(got[:2], 0.0)
    else:
        assert got[0, 0] != 0  # IEEE keeps the denormal, to within its coarse spacing
        np.testing.assert_allclose(got[:1], want[:1], rtol=0, atol=2e-45)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-6)  # normal values as ever


def test_daz_inputs_read_as_zero_with_large_weights():
    """A denormal input times 1e30 is 1e-9 in IEEE arithmetic, 0 with DAZ."""
    net = fastbp.Network([1, 1], output="identity", loss="mse", dtype="float32", seed=0)
    net.set_parameters([np.full((1, 1), 1e30)], [np.zeros(1)])
    X = np.array([[1e-39]], np.float32)
    assert net.forward(X)[0, 0] == 0
    fastbp.set_flush_denormals(False)
    np.testing.assert_allclose(net.forward(X)[0, 0], float(X[0, 0]) * 1e30, rtol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_threaded_product_tasks_take_the_callers_mode(threads):
    """A threaded product's tasks run on Numba's worker threads too: each adopts the
    caller's mode (every column panel flushed), and the workers are left as they were."""
    import numba

    M, K, N = 64, 64, 512  # 16 panels of 32 columns, past PARALLEL_MIN_MACS
    assert M * K * N >= gemm.PARALLEL_MIN_MACS
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((M, K)) * 1e-20).astype(np.float32)
    B = (rng.standard_normal((K, N)) * 1e-20).astype(np.float32)
    want = A.astype(np.float64) @ B.astype(np.float64)  # every entry below the normal range
    assert np.abs(want).max() < 1.17e-38 and np.count_nonzero(want) == want.size
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for form, fn, a, b in [("nn", gemm.matmul, A, B),
                               ("tn", gemm.matmul_tn, np.ascontiguousarray(A.T), B),
                               ("nt", gemm.matmul_nt, A, np.ascontiguousarray(B.T))]:
            out = np.full((M, N), np.nan, np.float32)
            call_flushing(fn, a, b, out, True, threads=True)
            np.testing.assert_array_equal(out, 0.0, err_msg=form)
            fastbp.set_flush_denormals(False)
            call_flushing(fn, a, b, out, True)
            fastbp.set_flush_denormals(True)
            assert np.count_nonzero(out) > 0.9 * out.size, form  # IEEE: denormal results
            np.testing.assert_allclose(out, want, rtol=0, atol=K * 2e-45, err_msg=form)
        seen = np.full(64, -1, np.int64)
        thread_modes(seen)
        np.testing.assert_array_equal(seen, 0)  # no worker was left flushing
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("sizes, batch", [([64, 128, 10], 32),         # one thread
                                          ([64, 256, 128, 10], 64)])   # threaded products
def test_training_on_denormal_inputs_equals_training_on_zeros(sizes, batch):
    """With DAZ, denormal inputs are read as zeros: the fit (parameters, momentum, losses) is
    bit for bit the fit on X = 0 (an independent run). Without flushing the two differ (the
    first layer's momentum holds the tiny gradients, denormals themselves), so the
    comparison can fail."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((192, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], 192)
    X_tiny = (X * TINY).astype(np.float32)
    assert np.abs(X_tiny).max() < 1.17e-38 and np.count_nonzero(X_tiny) == X_tiny.size

    def fit(data):
        net = fastbp.Network(sizes, activation="relu", dtype="float32", seed=2)
        W, b = net.weights, net.biases
        net.set_parameters(W, [bi + 0.1 for bi in b])  # nonzero biases: the deltas are not 0
        hist = net.fit(data, y, epochs=2, batch_size=batch,
                       optimizer=fastbp.SGD(lr=0.05, momentum=0.9), shuffle=False)
        assert _mode() == 0
        return net.get_flat_parameters(), np.array(net._opt_state), hist["loss"]

    zeros = fit(np.zeros_like(X))
    flushed = fit(X_tiny)
    np.testing.assert_array_equal(flushed[0], zeros[0])
    np.testing.assert_array_equal(flushed[1], zeros[1])
    assert flushed[2] == zeros[2]
    n_w1 = sizes[0] * sizes[1]
    assert np.count_nonzero(zeros[1][0, :n_w1]) == 0  # X = 0: no first-layer gradient
    fastbp.set_flush_denormals(False)
    ieee = fit(X_tiny)
    assert np.count_nonzero(ieee[1][0, :n_w1]) > n_w1 // 2  # IEEE: denormal momentum


def test_gradients_and_loss_restore_the_mode():
    net = fastbp.Network([3, 4, 2], dtype="float32", seed=0)
    X = np.ones((5, 3), np.float32)
    y = np.array([0, 1, 0, 1, 1])
    net.gradients(X, y)
    net.loss(X, y)
    net.predict(X)
    assert _mode() == 0


def test_workers_started_by_a_flushing_fit_do_not_keep_flushing():
    """A new thread inherits its creator's mode. In a fresh process whose first parallel
    region is a flushing fit's, Numba's workers must still compute in IEEE mode afterwards
    (for other code's parallel regions), and every thread must have flushed during it."""
    code = textwrap.dedent("""
        import numba, numpy as np, fastbp
        from fastbp._denormals import thread_modes
        assert fastbp.flush_denormals() is True, "on by default"
        from fastbp.kernels.cpu import gemm
        if not fastbp._threading.products_may_thread() or numba.config.NUMBA_NUM_THREADS < 2:
            print("NO-THREADS"); raise SystemExit
        rng = np.random.default_rng(0)
        X = (rng.standard_normal((128, 64)) * 1e-39).astype(np.float32)
        y = rng.integers(0, 10, 128)
        net = fastbp.Network([64, 256, 128, 10], dtype="float32", seed=0)
        net.fit(X, y, epochs=1, batch_size=64)  # threaded products: the first launch
        assert net._engine._fit_threaded, "expected a threaded fit"
        seen = np.full(64, -1, np.int64)
        thread_modes(seen)
        print("MODES", sorted(set(seen.tolist())))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    if "NO-THREADS" in out.stdout:
        pytest.skip("Numba cannot use two threads in this process")
    assert "MODES [0]" in out.stdout, out.stdout + out.stderr

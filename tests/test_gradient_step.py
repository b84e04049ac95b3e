"""The weight gradient fused into the optimizer step (kernels/cpu/gradient_step.py) and the
checked training steps built on it: the same bits as the product followed by the update,
a bound that really bounds the product, and training that matches unchecked training
through the fused path and through its fallbacks."""
import zlib

import numpy as np
import pytest

from fastbp.kernels.cpu import network as K
from fastbp.kernels.cpu.gemm import _tn_panels_parallel, matmul_tn
from fastbp.kernels.cpu.gradient_step import (ADAM_MODE, MOMENTUM, NESTEROV, PLAIN,
                                              gradient_bound, weight_gradient_step)
from fastbp.kernels.cpu.updates import adam_range, sgd_range

DTYPES = [np.float32, np.float64]
MODES = [PLAIN, MOMENTUM, NESTEROV, ADAM_MODE]
# (batch rows, n_in, n_out): one block and several; n_out not a multiple of a vector; rows
# of A a multiple of 4 KiB apart (float32 1024: the packed reduction chunks of 48 rows)
# with a batch of several chunks; more batch rows than the unpacked chunk (256 float32);
# a large batch and delta, which takes the tall blocks (``TALL_TASK_ROWS``), rows to spare
SHAPES = [(5, 8, 16), (7, 50, 37), (32, 130, 1030), (100, 1024, 40), (300, 24, 70),
          (260, 45, 530)]


def _reference(A, D, W, S0, S1, mode, decoupled):
    """The threaded ``A.T @ B`` (``matmul_tn(threaded=True)`` on a product large enough to
    thread) then ``sgd_range`` / ``adam_range``, on copies."""
    g = np.empty(W.shape, W.dtype)
    _tn_panels_parallel(A.ravel(), D.ravel(), g.ravel(), W.shape[0], A.shape[0], W.shape[1])
    p, v0, v1 = W.copy(), S0.copy(), S1.copy()
    pf, gf, s0, s1 = p.ravel(), g.ravel(), v0.ravel(), v1.ravel()
    if mode == ADAM_MODE:
        adam_range(pf, gf, s0, s1, 3, 0.01, 0.9, 0.999, 1e-8, 0.001, decoupled, 0, pf.size)
    else:
        sgd_range(pf, gf, s0, 0.01, 0.0 if mode == PLAIN else 0.9, mode == NESTEROV, 0.001, 0,
                  pf.size)
    return p, v0, v1


# one worker for every case: they share each dtype's compiled step (13.7 s compiled twice when
# the cases were spread over both workers)
@pytest.mark.xdist_group("weight_gradient_step")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("threaded", [True, None])
def test_step_is_the_product_then_the_update_bit_for_bit(dtype, shape, threaded):
    R, M, N = shape
    rng = np.random.default_rng(zlib.crc32(f"{dtype}{shape}".encode()))
    A = rng.standard_normal((R, M)).astype(dtype)
    D = rng.standard_normal((R, N)).astype(dtype)
    for mode in MODES:
        for decoupled in ([False, True] if mode == ADAM_MODE else [False]):
            W = rng.standard_normal((M, N)).astype(dtype)
            S0 = rng.standard_normal((M, N)).astype(dtype)
            S1 = rng.random((M, N)).astype(dtype)
            p, v0, v1 = _reference(A, D, W, S0, S1, mode, decoupled)
            work = np.full(R * N, np.nan, dtype)
            weight_gradient_step(A, D, W, S0, S1, mode, 0.01, 0.9, 0.001, 0.9, 0.999, 1e-8,
                                 decoupled, 3, work, threaded)
            np.testing.assert_array_equal(W, p)
            if mode != PLAIN:
                np.testing.assert_array_equal(S0, v0)
            if mode == ADAM_MODE:
                np.testing.assert_array_equal(S1, v1)
    # and the gradient itself against float64 NumPy (lr = 1, nothing else)
    W = np.zeros((M, N), dtype)
    weight_gradient_step(A, D, W, W, W, PLAIN, 1.0, 0.0, 0.0, 0.9, 0.999, 1e-8, False, 1,
                         np.empty(R * N, dtype), threaded)
    ref = A.astype(np.float64).T @ D.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(-W, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_step_refuses_a_small_workspace_and_empty_factors():
    A, D = np.ones((4, 3), np.float32), np.ones((4, 5), np.float32)
    W = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match="work"):
        weight_gradient_step(A, D, W, W, W, PLAIN, 0.1, 0.0, 0.0, 0.9, 0.999, 1e-8, False, 1,
                             np.empty(19, np.float32))
    with pytest.raises(ValueError, match="empty"):
        weight_gradient_step(A[:0], D[:0], W, W, W, PLAIN, 0.1, 0.0, 0.0, 0.9, 0.999, 1e-8,
                             False, 1, np.empty(20, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_bound_bounds_the_product(dtype):
    """Never below the largest magnitude of the product as computed (float32 rounding
    included), over magnitudes from tiny to huge and rows of one sign (where the bound is
    tight); inf whenever a factor holds inf or NaN, even against a zero row."""
    rng = np.random.default_rng(4)
    for trial in range(200):
        R, M, N = rng.integers(1, 40, size=3)
        A = rng.standard_normal((R, M)) * 10.0 ** rng.uniform(-20, 15)
        D = rng.standard_normal((R, N)) * 10.0 ** rng.uniform(-20, 15)
        if trial % 2:
            A, D = np.abs(A), np.abs(D)  # every product adds: the bound's worst case
        A, D = A.astype(dtype), D.astype(dtype)
        g = np.empty((M, N), dtype)
        matmul_tn(A, D, g)
        assert np.isfinite(g).all()
        bound = gradient_bound(A, D)
        assert float(np.abs(g).max()) <= bound
        assert bound <= 1.01 * float(np.abs(A).max(1) @ np.abs(D).max(1)) + 1e-300
    A, D = np.ones((3, 4), dtype), np.zeros((3, 5), dtype)
    for bad in (np.inf, -np.inf, np.nan):
        A2 = A.copy()
        A2[1, 2] = bad
        assert gradient_bound(A2, D) == np.inf
        D2 = D.copy()
        D2[2, 0] = bad
        assert gradient_bound(A, D2) == np.inf


def _fit(sizes, dtype, opt_name, checked, X, Y, batch, epochs, seed=1, tweak=None):
    import fastbp
    opts = {"sgd": lambda: fastbp.SGD(lr=0.05),
            "momentum": lambda: fastbp.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
            "nesterov": lambda: fastbp.SGD(lr=0.05, momentum=0.9, nesterov=True),
            "adam": lambda: fastbp.Adam(lr=1e-3),
            "adamw": lambda: fastbp.Adam(lr=1e-3, weight_decay=0.01, decoupled=True)}
    net = fastbp.Network(sizes, dtype=dtype, seed=seed)
    opt = opts[opt_name]()
    net.fit(X[:batch], Y.argmax(1)[:batch], epochs=0, optimizer=opt)  # the optimizer state
    if tweak is not None:
        tweak(net)
    eng = net._engine
    eng.begin_fit(X, Y, batch, checked)
    statuses = []
    try:
        for _ in range(epochs):
            order = np.arange(X.shape[0], dtype=np.int64)
            statuses.append(eng.run_batches(order, 0, -(-X.shape[0] // batch), opt.code,
                                            opt.hyper(0, 1), net._opt_state, net._opt_step))
        threaded = eng._fit_threaded
    finally:
        eng.end_fit()
    return (statuses, net.get_flat_parameters(), net._opt_state.copy(), net._opt_step.copy(),
            threaded)


SIZES = [160, 256, 10]  # the first layer's product at batch 32 is threaded: it fuses
BATCH = 32


def _data(dtype, n=200):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, SIZES[0])).astype(dtype)
    Y = np.eye(SIZES[-1], dtype=dtype)[rng.integers(0, SIZES[-1], n)]
    return X, Y


# one worker for every case (README's ``--dist loadgroup``), with the other checked, threaded
# fits of this file and test_gemm's, which share their compiled drivers.
# every optimizer in float32; float64 for one. Each dtype and optimizer family (SGD, Adam)
# compiles its own checked, threaded driver, 25-47 s each in a cold run of the suite; the
# float64 fused step of every optimizer is checked bit for bit at kernel level above
# (test_step_is_the_product_then_the_update_bit_for_bit), and the driver's choice of step
# does not depend on the dtype.
@pytest.mark.parametrize("dtype, opt", [(np.float32, o) for o in
                                        ("sgd", "momentum", "nesterov", "adam", "adamw")]
                         + [(np.float64, "momentum")])
@pytest.mark.xdist_group("checked_threaded_fits")
def test_fused_checked_training_matches_unchecked(dtype, opt):
    """Checked training of a net whose first layer fuses its gradient into the step
    (and whose output layer, and the last, smaller batch, do not) takes the same steps,
    bit for bit, as unchecked training."""
    X, Y = _data(dtype)
    params = np.zeros(1, dtype)
    assert K._fuses_any(BATCH, np.array(SIZES, np.int64), params, True)
    assert not K._fuses_any(X.shape[0] % BATCH, np.array(SIZES, np.int64), params, True)
    plain = _fit(SIZES, dtype, opt, False, X, Y, BATCH, 3)
    fused = _fit(SIZES, dtype, opt, True, X, Y, BATCH, 3)
    if not fused[4]:
        pytest.fail("the engine did not thread this fit: the fused path was not exercised")
    assert plain[0] == fused[0] and all(s[1:] == (7, 0) for s in fused[0])
    for a, b in zip(plain[1:4], fused[1:4]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.xdist_group("checked_threaded_fits")
def test_fused_step_falls_back_where_the_bound_proves_nothing():
    """A parameter beyond float32's max / 16: no bound proves a step, so the fused step
    falls back to the gradients in memory and the exact check, and still takes the same
    steps as unchecked training; with a learning rate that really overflows, the step is
    refused (status 2) and nothing is written."""
    X, Y = _data(np.float32)

    def big(net):
        net._engine.params[5] = 3e37

    plain = _fit(SIZES, np.float32, "momentum", False, X, Y, BATCH, 2, tweak=big)
    fused = _fit(SIZES, np.float32, "momentum", True, X, Y, BATCH, 2, tweak=big)
    assert fused[4]
    assert plain[0] == fused[0]
    for a, b in zip(plain[1:4], fused[1:4]):
        np.testing.assert_array_equal(a, b)

    import fastbp
    net = fastbp.Network(SIZES, seed=1)
    opt = fastbp.SGD(lr=1e38)
    net.fit(X[:BATCH], Y.argmax(1)[:BATCH], epochs=0, optimizer=opt)
    net._engine.params[:] *= 1e7  # activations and gradients large enough to overflow
    before = net.get_flat_parameters().copy()
    eng = net._engine
    eng.begin_fit(X, Y, BATCH, True)
    try:
        status = eng.run_batches(np.arange(X.shape[0], dtype=np.int64), 0, 1, opt.code,
                                 opt.hyper(0, 1), net._opt_state, net._opt_step)
    finally:
        eng.end_fit()
    assert status[1:] == (0, 2)
    np.testing.assert_array_equal(net.get_flat_parameters(), before)


@pytest.mark.xdist_group("checked_threaded_fits")
def test_fused_output_layer_matches_unchecked():
    """An output layer wide enough to fuse (700 classes): its delta, the output delta, is the
    one kept in the logits' slot; the same steps as unchecked training."""
    sizes = [64, 96, 700]
    rng = np.random.default_rng(11)
    X = rng.standard_normal((96, sizes[0])).astype(np.float32)
    Y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], 96)]
    S = np.array(sizes, np.int64)
    p = np.zeros(1, np.float32)
    assert not K._fuses_any(BATCH, S[:2], p, True)  # the hidden layer alone does not fuse
    assert K._fuses_any(BATCH, S, p, True)
    plain = _fit(sizes, np.float32, "momentum", False, X, Y, BATCH, 2)
    fused = _fit(sizes, np.float32, "momentum", True, X, Y, BATCH, 2)
    assert fused[4]
    assert plain[0] == fused[0] and all(s[1:] == (3, 0) for s in fused[0])
    for a, b in zip(plain[1:4], fused[1:4]):
        np.testing.assert_array_equal(a, b)

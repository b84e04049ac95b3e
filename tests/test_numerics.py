"""Numerical stability: softmax, log-softmax/cross-entropy, sigmoid and binary cross-entropy for
logits up to +-1e4 in float32 (finite loss and gradients, no NaN from log(0)), matching a
float64 reference wherever that is finite; and the divergence policy (no poisoned parameters)."""
import warnings

import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax

import fastbp
import fastbp.kernels as K
from fastbp.kernels.activations import ACTIVATION_CODES, LOSS_CODES

import reference as R

BIG = [0.0, 1.0, -1.0, 30.0, -30.0, 88.0, -88.0, 89.0, -104.0, 710.0, -745.0, 1e3, -1e3, 1e4,
       -1e4]


def _logits(rng, n, k, dtype):
    Z = rng.choice(BIG, size=(n, k)) + rng.standard_normal((n, k))
    return Z.astype(dtype)


def _ref_ce(Z, Y):  # stable float64 cross-entropy: sum_i sum_j y_ij (lse_i - z_ij)
    return float(-(Y * log_softmax(Z, axis=1)).sum())


def _ref_bce(Z, Y):  # stable float64 BCE from logits: log(1 + e^z) - y z
    return float((np.logaddexp(0.0, Z) - Y * Z).sum())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(6))
def test_softmax_cross_entropy_extreme_logits(dtype, seed):
    rng = np.random.default_rng(seed)
    n, k = 16, 5
    Z = _logits(rng, n, k, dtype)
    Y = R.onehot(rng.integers(0, k, n), k).astype(dtype)
    A = np.empty_like(Z)
    for i in range(n):
        K.softmax_row(Z[i], A[i])
    Z64 = Z.astype(np.float64)
    assert np.isfinite(A).all() and (A >= 0).all()
    np.testing.assert_allclose(A.sum(1), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(A, softmax(Z64, axis=1), rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or divide warnings either
        loss = K.loss_sum(Z, A, Y, ACTIVATION_CODES["softmax"], LOSS_CODES["cross_entropy"])
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, _ref_ce(Z64, Y.astype(np.float64)), rtol=1e-6)
    delta = np.full_like(Z, np.nan)
    K.output_delta(Z, A, Y, ACTIVATION_CODES["softmax"], LOSS_CODES["cross_entropy"], 1.0 / n,
                   delta)
    assert np.isfinite(delta).all()
    np.testing.assert_allclose(delta, (softmax(Z64, axis=1) - Y) / n, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(6))
def test_sigmoid_binary_cross_entropy_extreme_logits(dtype, seed):
    rng = np.random.default_rng(100 + seed)
    n, k = 16, 3
    Z = _logits(rng, n, k, dtype)
    Y = rng.integers(0, 2, (n, k)).astype(dtype)
    Y[0] = 0.3  # soft targets too
    A = np.empty_like(Z)
    Zb = Z.copy()
    K.bias_activation(Zb, np.zeros(k, dtype), ACTIVATION_CODES["sigmoid"], A)
    Z64 = Z.astype(np.float64)
    assert np.isfinite(A).all() and (A >= 0).all() and (A <= 1).all()
    np.testing.assert_allclose(A, expit(Z64), rtol=1e-5, atol=1e-30)
    loss = K.loss_sum(Z, A, Y, ACTIVATION_CODES["sigmoid"], LOSS_CODES["binary_cross_entropy"])
    assert np.isfinite(loss)  # A is exactly 0 or 1 here: log(A) would be -inf
    np.testing.assert_allclose(loss, _ref_bce(Z64, Y.astype(np.float64)), rtol=1e-6)
    delta = np.full_like(Z, np.nan)
    K.output_delta(Z, A, Y, ACTIVATION_CODES["sigmoid"], LOSS_CODES["binary_cross_entropy"],
                   1.0 / n, delta)
    assert np.isfinite(delta).all()
    np.testing.assert_allclose(delta, (expit(Z64) - Y) / n, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("act", [a for a in ACTIVATION_CODES if a != "softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_activation_and_derivative_finite_at_extremes(act, dtype):
    z = np.array([[-1e4, -1e3, -745.0, -88.0, -1.0, 0.0, 1.0, 88.0, 745.0, 1e3, 1e4]], dtype)
    A = np.empty_like(z)
    Z = z.copy()
    K.bias_activation(Z, np.zeros(z.shape[1], dtype), ACTIVATION_CODES[act], A)
    assert np.isfinite(A).all(), (act, A)
    with np.errstate(over="ignore"):
        want = R.ACT[act](z.astype(np.float64))
    np.testing.assert_allclose(A, want, rtol=1e-5, atol=1e-6)
    d = np.ones_like(z[0])
    K.mul_activation_grad(Z[0], A[0], ACTIVATION_CODES[act], d)
    assert np.isfinite(d).all(), (act, d)
    with np.errstate(over="ignore"):
        want_d = R.ACT_GRAD[act](z[0].astype(np.float64))
    np.testing.assert_allclose(d, want_d, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("output,loss,k", [("softmax", "cross_entropy", 4),
                                           ("sigmoid", "binary_cross_entropy", 1),
                                           ("sigmoid", "binary_cross_entropy", 3)])
@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_network_loss_and_gradients_finite_for_huge_logits(output, loss, k, scale):
    """A float32 network whose output logits reach +-scale: Network.loss and .gradients are
    finite and match a float64 reference computed in log-space."""
    rng = np.random.default_rng(int(scale) + k)
    net = fastbp.Network([3, k], output=output, loss=loss, dtype="float32", seed=0)
    W = rng.choice([-1.0, 1.0], (3, k)) * scale / 3
    b = np.zeros(k)
    net.set_parameters([W], [b])
    X = rng.choice([-1.0, 1.0], (20, 3)).astype(np.float32)
    y = rng.integers(0, k, 20) if loss == "cross_entropy" else rng.integers(0, 2, (20, k))
    Z = X.astype(np.float64) @ net.weights[0].astype(np.float64)
    assert np.abs(Z).max() >= scale * 0.99
    if loss == "cross_entropy":
        Y = R.onehot(y, k)
        want_loss = _ref_ce(Z, Y) / 20
        want_delta = (softmax(Z, axis=1) - Y) / 20
    else:
        Y = y.astype(np.float64)
        want_loss = _ref_bce(Z, Y) / 20
        want_delta = (expit(Z) - Y) / 20
    got = net.loss(X, y)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, want_loss, rtol=1e-5)
    dW, db = net.gradients(X, y)
    assert np.isfinite(dW[0]).all() and np.isfinite(db[0]).all()
    np.testing.assert_allclose(dW[0], X.T.astype(np.float64) @ want_delta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(db[0], want_delta.sum(0), rtol=1e-4, atol=1e-6)
    proba = net.predict_proba(X)
    assert np.isfinite(proba).all()


def test_training_on_saturated_logits_stays_finite():
    """Fit from a saturated start (logits ~1e4): loss finite, no divergence, parameters move."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    net = fastbp.Network([4, 3], dtype="float32", seed=0)
    net.set_parameters([np.full((4, 3), 2500.0) * np.array([1, -1, 0.5])], [np.zeros(3)])
    hist = net.fit(X, y, epochs=3, batch_size=16, optimizer=fastbp.SGD(lr=1e-3))
    assert np.isfinite(hist["loss"]).all() and not getattr(hist, "diverged", False)
    assert np.isfinite(net.get_flat_parameters()).all()


# --- divergence: the network never keeps non-finite parameters --------------------------------
@pytest.mark.parametrize("make_opt", [lambda: fastbp.SGD(lr=3e38),
                                      lambda: fastbp.SGD(lr=1e30, momentum=0.9),
                                      lambda: fastbp.Adam(lr=1e38)])
@pytest.mark.parametrize("chunk_seconds", [0.0, 0.2])
@pytest.mark.parametrize("checked", [False, True])
def test_divergence_never_keeps_poisoned_parameters(monkeypatch, make_opt, chunk_seconds,
                                                    checked):
    """An update can turn parameters to Inf/NaN while the loss of that very batch was finite;
    the next chunk then starts from poisoned parameters. The network must still end finite,
    equal to a state it really passed through at a chunk boundary. ``checked``: fit's
    other recovery mode, each update checked before it is written (no snapshot)."""
    from fastbp import training
    monkeypatch.setattr(training, "CHUNK_SECONDS", chunk_seconds)
    if checked:
        monkeypatch.setattr(training, "SNAPSHOT_MAX_BYTES", 0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)) * 100
    y = rng.integers(0, 2, 64)
    net = fastbp.Network([3, 4, 2], seed=0)
    start = net.get_flat_parameters()
    with pytest.raises(fastbp.DivergenceError, match="diverged") as info:
        net.fit(X, y, epochs=3, batch_size=8, optimizer=make_opt(), shuffle=False)
    assert info.value.history.diverged
    p = net.get_flat_parameters()
    assert np.isfinite(p).all()
    assert np.isfinite(net._opt_state).all()
    net.predict(X)  # usable
    if (chunk_seconds == 0.0 or checked) and make_opt().lr == 3e38:
        # the very first update overflows: the only finite state was the start
        np.testing.assert_array_equal(p, start)
        assert ("update of epoch 1, batch 1 would have made the parameters NaN or Inf"
                if checked else "parameters became NaN or Inf in epoch 1, batch 1") \
            in str(info.value)


def test_divergence_stop_policy_warns_and_keeps_finite():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 3)) * 100
    y = rng.integers(0, 2, 64)
    net = fastbp.Network([3, 4, 2], seed=0)
    with pytest.warns(RuntimeWarning, match="training diverged"):
        hist = net.fit(X, y, epochs=3, batch_size=8, optimizer=fastbp.SGD(lr=3e38),
                       on_divergence="stop")
    assert hist.diverged
    assert np.isfinite(net.get_flat_parameters()).all()
    assert net.epochs_done == 0  # the diverged epoch is not counted


def test_fit_refuses_non_finite_starting_state():
    net = fastbp.Network([3, 4, 2], seed=0)
    X, y = np.zeros((8, 3)), np.zeros(8, int)
    net.fit(X, y, epochs=1, optimizer=fastbp.SGD(lr=0.1, momentum=0.9))
    net._opt_state[0, 0] = np.nan  # only reachable by poking internals
    with pytest.raises(fastbp.DivergenceError, match="before training starts"):
        net.fit(X, y, epochs=2, resume=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (17,), (1000,), (3, 1001)])
def test_all_finite_finds_every_non_finite_value(dtype, shape):
    """The compiled scan behind fit's checks and input validation (no early exit, so it is
    vectorised) against NumPy's isfinite, with the bad value at the first, last and a random
    position."""
    from fastbp.kernels.cpu.checks import all_finite
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    a = rng.standard_normal(shape).astype(dtype)
    assert all_finite(a)
    flat = a.reshape(-1)
    for pos in {0, flat.size - 1, int(rng.integers(flat.size))}:
        for bad in (np.nan, -np.nan, np.inf, -np.inf):
            b = a.copy()
            b.reshape(-1)[pos] = bad
            assert all_finite(b) == bool(np.isfinite(b).all()) is False
        # the scan compares bit patterns: the finite extremes right below the infinities'
        # pattern, a subnormal and a negative zero must still pass
        info = np.finfo(dtype)
        for edge in (info.max, -info.max, info.smallest_subnormal, -0.0):
            b = a.copy()
            b.reshape(-1)[pos] = edge
            assert all_finite(b) is True


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("numpy_path", [True, False])
def test_input_and_state_check_finds_every_non_finite_value(dtype, numpy_path, monkeypatch):
    """``_validation.finite`` (fit's input check and the engine's parameter and state check):
    NumPy's isfinite below ``FINITE_NUMPY_MAX`` elements, the compiled scan from there
    (forced here by moving the threshold); both against NumPy's isfinite, with NaN, -NaN,
    +-Inf at the first, last and a random position, and the finite extremes passing."""
    from fastbp import _validation
    monkeypatch.setattr(_validation, "FINITE_NUMPY_MAX", 1 << 40 if numpy_path else 0)
    rng = np.random.default_rng(9)
    a = rng.standard_normal((37, 29)).astype(dtype)
    assert _validation.finite(a) is True
    assert _validation.finite(a[:0]) is True
    flat = a.reshape(-1)
    info = np.finfo(dtype)
    for pos in {0, flat.size - 1, int(rng.integers(flat.size))}:
        for bad in (np.nan, -np.nan, np.inf, -np.inf):
            b = a.copy()
            b.reshape(-1)[pos] = bad
            assert _validation.finite(b) is False
        for edge in (info.max, -info.max, info.smallest_subnormal, -0.0):
            b = a.copy()
            b.reshape(-1)[pos] = edge
            assert _validation.finite(b) is True

"""Every CPU kernel against the float64 NumPy reference, on odd shapes, both dtypes."""
import math
import zlib
from decimal import Decimal

import numpy as np
import pytest
from numba import njit

import fastbp.kernels as K
from fastbp.kernels.activations import ACTIVATION_CODES, LOSS_CODES, LOSS_OUTPUTS

import reference as R

SHAPES = [(1, 1, 1), (1, 5, 3), (7, 1, 4), (5, 6, 1), (13, 17, 11), (32, 64, 10)]
DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-10, np.float32: 2e-5}


def rand(rng, *shape, dtype=np.float64, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def close(got, want, dtype, scale=1.0):
    np.testing.assert_allclose(got, want, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10 * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", list(ACTIVATION_CODES))
def test_forward(act, shape, dtype):
    n, n_in, n_out = shape
    rng = np.random.default_rng(zlib.crc32(f"{act}{shape}".encode()))
    A_prev, W, b = rand(rng, n, n_in, dtype=dtype), rand(rng, n_in, n_out, dtype=dtype), \
        rand(rng, n_out, dtype=dtype)
    Z = np.full((n, n_out), np.nan, dtype)
    A = np.full((n, n_out), np.nan, dtype)
    K.forward(A_prev, W, b, ACTIVATION_CODES[act], Z, A)
    Zr = A_prev.astype(np.float64) @ W.astype(np.float64) + b
    close(Z, Zr, dtype, np.abs(Zr).max())
    close(A, R.ACT[act](Zr), dtype, max(1.0, np.abs(Zr).max()))


def _pairings():
    return [(out, loss) for loss, outs in LOSS_OUTPUTS.items() for out in outs]


def _targets(rng, loss, n, k):
    if loss == "cross_entropy":
        return R.onehot(rng.integers(0, k, n), k)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, k)).astype(float)
    return rng.standard_normal((n, k))


def _ref_delta(out, loss, Z, Y):
    """dC/dZ of the mean loss, from the reference loss by central differences per entry."""
    D = np.zeros_like(Z)
    h = 1e-6
    for idx in np.ndindex(*Z.shape):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[idx] += h
        Zm[idx] -= h
        D[idx] = (R.loss(loss, R.ACT[out](Zp), Y) - R.loss(loss, R.ACT[out](Zm), Y)) / (2 * h)
    return D


@pytest.mark.parametrize("out,loss", _pairings())
@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (6, 1), (9, 5)])
def test_output_delta_and_loss(out, loss, shape):
    if out == "softmax" and shape[1] == 1:
        shape = (shape[0], 2)
    n, k = shape
    rng = np.random.default_rng(k * 31 + n)
    Z = rng.standard_normal((n, k))
    A = R.ACT[out](Z)
    Y = _targets(rng, loss, n, k)
    code, lc = ACTIVATION_CODES[out], LOSS_CODES[loss]
    scale = 1.0 / (n * k) if loss == "mse" else 1.0 / n
    delta = np.full_like(Z, np.nan)
    K.output_delta(Z, A, Y, code, lc, scale, delta)
    np.testing.assert_allclose(delta, _ref_delta(out, loss, Z, Y), rtol=1e-6, atol=1e-9)
    got = K.loss_sum(Z, A, Y, code, lc) / n
    np.testing.assert_allclose(got, R.loss(loss, A, Y), rtol=1e-12)


def test_output_delta_rejects_unfit_pairing():
    Z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="cross_entropy needs softmax"):
        K.output_delta(Z, Z, Z, ACTIVATION_CODES["relu"], LOSS_CODES["cross_entropy"], 0.5,
                       np.empty_like(Z))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", [a for a in ACTIVATION_CODES if a != "softmax"])
def test_hidden_delta(act, shape, dtype):
    n, n_hidden, n_next = shape
    rng = np.random.default_rng(n * 1000 + n_hidden * 10 + n_next)
    Dn, W = rand(rng, n, n_next, dtype=dtype), rand(rng, n_hidden, n_next, dtype=dtype)
    Z = rand(rng, n, n_hidden, dtype=dtype)
    Z[np.abs(Z) < 1e-3] = 0.5  # keep finite differences away from kinks
    A = R.ACT[act](Z.astype(np.float64)).astype(dtype)
    delta = np.full((n, n_hidden), np.nan, dtype)
    K.hidden_delta(Dn, W, Z, A, ACTIVATION_CODES[act], delta)
    want = (Dn.astype(np.float64) @ W.astype(np.float64).T) * R.act_grad(act, Z.astype(np.float64))
    np.testing.assert_allclose(delta, want, rtol=max(TOL[dtype] * 10, 1e-7),
                               atol=max(TOL[dtype] * 10, 1e-7) * np.abs(want).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_weight_gradients(shape, dtype):
    n, n_in, n_out = shape
    rng = np.random.default_rng(n + n_in + n_out)
    A_prev, D = rand(rng, n, n_in, dtype=dtype), rand(rng, n, n_out, dtype=dtype)
    dW = np.full((n_in, n_out), np.nan, dtype)
    db = np.full(n_out, np.nan, dtype)
    K.weight_gradients(A_prev, D, dW, db)
    A64, D64 = A_prev.astype(np.float64), D.astype(np.float64)
    want = sum(np.outer(A64[i], D64[i]) for i in range(n))  # the batch's outer products
    close(dW, want, dtype, np.abs(want).max())
    close(db, D64.sum(0), dtype, np.abs(D64).sum())


# sizes below and above the parallel chunk (65536), odd on purpose
@pytest.mark.parametrize("size", [1, 7, 65536 + 1001])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.01),
                                                  (0.8, True, 0.0), (0.5, True, 0.1)])
def test_sgd_update(size, dtype, momentum, nesterov, wd):
    rng = np.random.default_rng(size)
    p = rand(rng, size, dtype=dtype)
    v = np.zeros(size, dtype)
    pr, vr = p.astype(np.float64), np.zeros(size)
    for _ in range(3):
        g = rand(rng, size, dtype=dtype)
        K.sgd_update(p, g, v, 0.05, momentum, nesterov, wd)
        pr, vr = R.sgd(pr, g.astype(np.float64), vr, 0.05, momentum, nesterov, wd)
    close(p, pr, dtype, 1.0)
    if momentum:
        close(v, vr, dtype, 1.0)


@pytest.mark.parametrize("size", [1, 9, 65536 + 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wd,decoupled", [(0.0, False), (0.05, False), (0.05, True)])
def test_adam_update(size, dtype, wd, decoupled):
    rng = np.random.default_rng(size + 5)
    p = rand(rng, size, dtype=dtype)
    m, v = np.zeros(size, dtype), np.zeros(size, dtype)
    pr, mr, vr = p.astype(np.float64), np.zeros(size), np.zeros(size)
    for t in range(1, 5):
        g = rand(rng, size, dtype=dtype)
        K.adam_update(p, g, m, v, t, 0.01, 0.9, 0.999, 1e-8, wd, decoupled)
        pr, mr, vr = R.adam(pr, g.astype(np.float64), mr, vr, t, 0.01, wd=wd,
                            decoupled=decoupled)
    close(p, pr, dtype, 1.0)
    close(m, mr, dtype, 1.0)
    close(v, vr, dtype, 1.0)


# --- the kernels reused from a user's own @njit code -------------------------------------------
@njit
def user_train_step(X, Y, W1, b1, W2, b2, lr, Z1, A1, Z2, A2, D2, D1, dW1, db1, dW2, db2):
    """A user's own compiled step for a 1-hidden-layer tanh/softmax net, built from kernels."""
    n = X.shape[0]
    K.forward(X, W1, b1, 2, Z1, A1)        # tanh
    K.forward(A1, W2, b2, 8, Z2, A2)       # softmax
    loss = K.loss_sum(Z2, A2, Y, 8, 2) / n
    K.output_delta(Z2, A2, Y, 8, 2, 1.0 / n, D2)
    K.weight_gradients(A1, D2, dW2, db2)
    K.hidden_delta(D2, W2, Z1, A1, 2, D1)
    K.weight_gradients(X, D1, dW1, db1)
    K.sgd_range(W1.reshape(-1), dW1.reshape(-1), dW1.reshape(-1), lr, 0.0, False, 0.0, 0, W1.size)
    K.sgd_range(b1, db1, db1, lr, 0.0, False, 0.0, 0, b1.size)
    K.sgd_range(W2.reshape(-1), dW2.reshape(-1), dW2.reshape(-1), lr, 0.0, False, 0.0, 0, W2.size)
    K.sgd_range(b2, db2, db2, lr, 0.0, False, 0.0, 0, b2.size)
    return loss


def test_kernels_inside_user_njit():
    rng = np.random.default_rng(0)
    n, d, h, k = 9, 4, 6, 3
    X, Y = rng.standard_normal((n, d)), R.onehot(rng.integers(0, k, n), k)
    W1, b1, W2, b2 = (rng.standard_normal(s) * 0.5 for s in [(d, h), (h,), (h, k), (k,)])
    ref = [W1.copy(), b1.copy(), W2.copy(), b2.copy()]
    bufs = [np.empty(s) for s in [(n, h), (n, h), (n, k), (n, k), (n, k), (n, h),
                                  (d, h), (h,), (h, k), (k,)]]
    for _ in range(3):
        loss = user_train_step(X, Y, W1, b1, W2, b2, 0.1, *bufs)
        # reference step: plain NumPy backprop
        Zr, Ar = R.forward(ref[0::2], ref[1::2], ["tanh", "softmax"], X)
        assert np.isclose(loss, R.loss("cross_entropy", Ar[-1], Y), rtol=1e-12)
        D2 = (Ar[2] - Y) / n
        D1 = (D2 @ ref[2].T) * (1 - Ar[1] ** 2)
        grads = [X.T @ D1, D1.sum(0), Ar[1].T @ D2, D2.sum(0)]
        ref = [p - 0.1 * g for p, g in zip(ref, grads)]
    for got, want in zip([W1, b1, W2, b2], ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


# --- updates checked before they are written ---------------------------------------------------
def _flat_update_case(rng, n, dtype, poison):
    """Flat params/grads/state where, with ``poison``, one entry's update overflows (float64
    reference: finite everywhere else, far from the largest float)."""
    p = rand(rng, n, dtype=dtype)
    g = rand(rng, n, dtype=dtype)
    state = np.abs(rand(rng, 2, n, dtype=dtype)) * 0.1
    k = int(rng.integers(n))
    if poison == "grad":  # p - lr * g overflows (SGD); g * g overflows (Adam)
        g[k] = np.finfo(dtype).max / 4
    elif poison == "nan":
        g[k] = np.nan
    return p, g, state, k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("poison", [None, "grad", "nan"])
@pytest.mark.parametrize("threaded", [None, True])
def test_update_is_finite_predicts_apply_update(dtype, opt, poison, threaded):
    """update_is_finite answers whether the update would leave parameters and state finite
    (judged here from a float64 NumPy reference), writes nothing, and does not count Adam's
    step; apply_update then matches the reference. Sizes above PARALLEL_MIN_PARAMS run the
    threaded split when allowed, bit-identical to the serial update."""
    from fastbp.kernels.activations import ADAM, SGD
    from fastbp.kernels.cpu.network import PARALLEL_MIN_PARAMS
    rng = np.random.default_rng(zlib.crc32(f"{dtype}{opt}{poison}".encode()))
    n = PARALLEL_MIN_PARAMS + 4099 if threaded else 1000
    nw = n - 37
    p, g, state, k = _flat_update_case(rng, n, dtype, poison)
    hyper = np.zeros(K.N_HYPER)
    hyper[:5] = [100.0 if opt != "adam" else 0.01, 0.0 if opt == "sgd" else 0.9,
                 opt == "nesterov", 0.01, 0.5]  # LR, MOMENTUM, NESTEROV, WEIGHT_DECAY, BIAS_DECAY
    hyper[5:8] = [0.9, 0.999, 1e-8]
    code = ADAM if opt == "adam" else SGD
    step = np.array([3], np.int64)
    before = (p.copy(), g.copy(), state.copy())
    ok = K.update_is_finite(p, g, state, code, hyper, step, nw, threaded)
    for a, b in zip((p, g, state), before):
        np.testing.assert_array_equal(a, b)  # nothing written
    assert step[0] == 3
    # the float64 reference, weights then biases (their decay times BIAS_DECAY)
    wd = np.where(np.arange(n) < nw, 0.01, 0.005)
    with np.errstate(all="ignore"):
        p64, g64, s64 = p.astype(np.float64), g.astype(np.float64), state.astype(np.float64)
        if opt == "adam":
            pr, mr, vr = R.adam(p64, g64, s64[0], s64[1], 4, 0.01, wd=wd)
            news = [pr, mr, vr]
        else:
            pr, vr = R.sgd(p64, g64, s64[0], 100.0, hyper[1], opt == "nesterov", wd)
            news = [pr] + ([vr] if opt != "sgd" else [])
        big = np.finfo(dtype).max
        want_ok = all((np.abs(a) < big).all() for a in news)
    assert ok == want_ok == (poison is None)
    K.apply_update(p, g, state, code, hyper, step, nw, threaded)
    assert step[0] == (4 if opt == "adam" else 3)
    rows = 2 if opt == "adam" else 0 if opt == "sgd" else 1
    assert (np.isfinite(p).all() and np.isfinite(state[:rows]).all()) == ok
    if ok:
        close(p, pr, dtype, np.abs(pr).max())
        if threaded:  # bit-identical to the serial update
            p2, s2, step2 = before[0].copy(), before[2].copy(), np.array([3], np.int64)
            K.apply_update(p2, before[1], s2, code, hyper, step2, nw)
            np.testing.assert_array_equal(p, p2)
            np.testing.assert_array_equal(state, s2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (7, 10), (8, 64), (9, 65), (33, 130),
                                   (32, 128)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_bias_sums_add_rows_in_order(dtype, shape, order):
    """The bias gradient (``weight_gradients``' db, summed in registers over blocks of rows
    and column vectors) equals adding the rows one after another, bit for bit: the result
    does not depend on the blocking. Fortran-ordered deltas take the plain loop."""
    from fastbp.kernels.cpu.gradients import bias_sums
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    delta = np.asarray(rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape),
                       dtype=dtype, order=order)
    want = np.zeros(shape[1], dtype)
    for row in delta:
        want += row
    db = np.full(shape[1], np.nan, dtype)
    njit(lambda d, b: bias_sums(d, b))(delta, db)
    np.testing.assert_array_equal(db, want)


def _table_loops(name):
    """Loops over the scalar table's own functions (kernels/cpu/scalar.py), storing each
    float64-or-dtype result into the arrays as the generic kernel loop does."""
    from fastbp.kernels.cpu import scalar
    f, g = getattr(scalar, name), getattr(scalar, name + "_grad")

    @njit
    def forward(Z, b, A):
        for i in range(Z.shape[0]):
            for j in range(Z.shape[1]):
                Z[i, j] += b[j]
                A[i, j] = f(Z[i, j])

    @njit
    def grad(Z, A, D):
        for i in range(D.shape[0]):
            for j in range(D.shape[1]):
                D[i, j] *= g(Z[i, j], A[i, j])
    return forward, grad


# The activations whose kernel loops take vecmath.py's vectorisable forms instead of the
# table's libm calls, per dtype: forward, and derivative where it differs from the table's.
_FAST_FORWARD = {np.float32: {"tanh", "sigmoid", "elu", "softplus", "gelu"},
                 np.float64: {"tanh", "sigmoid", "elu", "softplus", "gelu"}}
_FAST_GRAD = {np.float32: {"softplus", "gelu"}, np.float64: {"softplus", "gelu"}}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", [a for a in ACTIVATION_CODES if a != "softmax"])
def test_activation_loops_give_the_tables_bits(act, dtype):
    """bias_activation and mul_activation_grad_2d give exactly the values of the scalar
    table's f and f' (the one definition CPU and GPU compile), bit for bit, extremes
    included (inf, -inf, NaN, -0.0 in Z; inf, -inf in D). ReLU has loops of its own in the
    arrays' dtype (activation.py), which this holds to the table. Where a loop takes a
    vectorisable form (vecmath.py: ``_FAST_FORWARD``, ``_FAST_GRAD``) it is within 3 ulp of
    the table here (test_vectorised_activation_accuracy sweeps whole ranges against
    independent references), with the table's value at +-inf, its sign at -0.0 and NaN for
    NaN; the
    derivative is then compared with the table's from that same A."""
    code = ACTIVATION_CODES[act]
    rng = np.random.default_rng(zlib.crc32(f"{act}{dtype}".encode()))
    Z0 = (rng.standard_normal((9, 37)) * 4).astype(dtype)
    Z0[0, :4] = [np.inf, -np.inf, np.nan, -0.0]
    b = rng.standard_normal(37).astype(dtype)
    b[:4] = 0
    D0 = rng.standard_normal((9, 37)).astype(dtype)
    D0[1, :2] = [np.inf, -np.inf]
    forward, grad = _table_loops(act)
    Zk, Ak = Z0.copy(), np.empty_like(Z0)
    Zt, At = Z0.copy(), np.empty_like(Z0)
    with np.errstate(all="ignore"):
        K.bias_activation(Zk, b, code, Ak)
        forward(Zt, b, At)
        Dk, Dt = D0.copy(), D0.copy()
        from fastbp.kernels.cpu.activation import mul_activation_grad_2d
        mul_activation_grad_2d(Zk, Ak, code, Dk)
        grad(Zt, At, Dt)
    pairs = [(Zk, Zt)]
    if act in _FAST_FORWARD[dtype]:
        ulps = _ulps(Ak, At)
        # (the table's GELU, 0.5 z (1 + erf), cancels in the far negative tail: its float64
        # values are off by up to ~1e-16 |z| there, where the fast form is accurate)
        with np.errstate(invalid="ignore"):  # (inf - inf at the extremes)
            ulps[np.abs(Ak - At) <= 1e-15 * np.abs(Zk)] = 0
        assert ulps.max() <= 3, ulps.max()
        # inf, -inf: exactly the table's; -0.0: its sign (and the bound); NaN: a NaN
        pairs.append((Ak[0, :2], At[0, :2]))
        assert np.signbit(Ak[0, 3]) == np.signbit(At[0, 3])
        assert np.isnan(Ak[0, 2])
        # (the derivative through the table from the fast forward: recompute the table's
        # from that same A, so the bits compare)
        Dt = D0.copy()
        with np.errstate(all="ignore"):
            grad(Zt, Ak, Dt)
    else:
        pairs.append((Ak, At))
    if act in _FAST_GRAD[dtype]:
        # |f'| <= 1.13 for both; the error is relative to the terms of f', not to f' itself
        # (GELU's f' crosses 0 at z = -0.75)
        eps = np.finfo(dtype).eps
        finite = np.isfinite(Dt)
        with np.errstate(invalid="ignore"):
            diff = np.abs(Dk - Dt)
        assert np.all(diff[finite] <= 4 * eps * np.abs(D0)[finite] * 2)
        assert np.array_equal(np.isnan(Dk), np.isnan(Dt))
        assert np.array_equal(Dk[~finite & ~np.isnan(Dt)], Dt[~finite & ~np.isnan(Dt)])
    else:
        pairs.append((Dk, Dt))
    for got, want in pairs:
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8))


def _ulps(got, want):
    """Units in the last place between two float32 or float64 arrays (equal NaNs: 0)."""
    ints, sign = (np.int32, 0x7FFFFFFF) if got.dtype == np.float32 else \
        (np.int64, 0x7FFFFFFFFFFFFFFF)
    g = got.view(ints).astype(np.int64)
    w = want.astype(got.dtype).view(ints).astype(np.int64)
    g = np.where(g < 0, -(g & sign), g)
    w = np.where(w < 0, -(w & sign), w)
    with np.errstate(over="ignore"):
        d = np.abs(g - w)  # (only opposite signs far apart overflow; none are compared here)
    d[np.isnan(got) & np.isnan(want)] = 0
    return d


def _sweep(dtype):
    """Dense and logarithmic grids over the activations' interesting ranges, both signs."""
    rng = np.random.default_rng(7)
    z = np.concatenate([np.linspace(-20, 20, 1_000_001),
                        rng.standard_normal(200_000) * 4,
                        np.logspace(-30, 1.5, 50_000), -np.logspace(-30, 1.5, 50_000),
                        np.linspace(-20, -800, 20_000), np.linspace(20, 800, 2_000)])
    return z.astype(dtype)


def _erfc(x):
    return np.frompyfunc(math.erfc, 1, 1)(x).astype(np.float64)


def _two_product(a, b):
    """a * b = p + e exactly (Veltkamp's split, Dekker's product), float64 arrays."""
    def split(x):
        c = 134217729.0 * x
        hi = c - (c - x)
        return hi, x - hi
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


_SQRT2_LO = float(Decimal(2).sqrt() - Decimal(math.sqrt(2)))  # sqrt(2) = SQRT2 + this


def _normal_cdf_pdf_reference(z):
    """Phi(z) and phi(z) for float64 z, to a few ulp without mpmath: math.erfc at
    t = -z / sqrt(2) carried as two doubles (at t = 20 one ulp of t is 800 ulp of erfc),
    and exp(-z**2 / 2) from z**2 as two doubles."""
    w = -z
    th = w / math.sqrt(2)
    p, e = _two_product(th, np.full_like(th, math.sqrt(2)))
    tl = (((w - p) - e) - th * _SQRT2_LO) / math.sqrt(2)  # t = th + tl
    with np.errstate(all="ignore"):
        cdf = 0.5 * (_erfc(th) - 2 / math.sqrt(math.pi) * np.exp(-th * th) * tl)
        hi, lo = _two_product(z, z)
        pdf = np.exp(-0.5 * hi) * (1 - 0.5 * lo) / math.sqrt(2 * math.pi)
    return cdf, pdf


def _reference(act, z):
    """Independent float64 NumPy / math references (no cancellation on either side)."""
    e = np.exp(-np.abs(z))
    sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    if act == "tanh":
        return np.tanh(z)
    if act == "sigmoid":
        return sig
    if act == "elu":
        return np.where(z < 0, np.expm1(z), z)
    if act == "softplus":
        return np.maximum(z, 0) + np.log1p(e)
    return z * _normal_cdf_pdf_reference(z)[0]  # gelu: z Phi(z)


@pytest.mark.parametrize("act,dtype", [(a, d) for d in DTYPES for a in sorted(_FAST_FORWARD[d])])
def test_vectorised_activation_accuracy(act, dtype):
    """The vectorisable forward forms (vecmath.py) against independent float64 references
    over ~1.3 million points (dense on [-20, 20], random, logarithmic down to 1e-30, and
    far out to +-800): within 3 ulp of the reference rounded to the dtype (float64: 4, as
    NumPy's float64 functions are themselves up to 1 ulp off; GELU 8: its erfc series, the
    exp and the products each round, up to 6 ulp from mpmath measured), wherever that is above the
    point where the forms flush exp to 0 (exp(-87.3) = 1.22e-38 in float32,
    exp(-708) = 3.3e-307 in float64, just above the smallest normals). Below it (sigmoid,
    softplus and GELU far out on the negative side), within that flush point of it."""
    z = _sweep(dtype)
    z64 = z.astype(np.float64)
    with np.errstate(all="ignore"):
        want = _reference(act, z64)
    A = np.empty((1, z.size), dtype)
    K.bias_activation(z.reshape(1, -1).copy(), np.zeros(z.size, dtype),
                      ACTIVATION_CODES[act], A)
    got = A[0]
    tiny = math.exp(-87.3) if dtype == np.float32 else math.exp(-708)
    normal = np.abs(want) > tiny
    ulps = _ulps(got[normal], want[normal])
    bound = 3 if dtype == np.float32 else (8 if act == "gelu" else 4)
    assert ulps.max() <= bound, (ulps.max(), z[normal][ulps.argmax()])
    assert np.all(np.abs(got[~normal] - want[~normal]) <= tiny)


@pytest.mark.parametrize("act,dtype", [("softplus", np.float32), ("gelu", np.float32),
                                       ("gelu", np.float64)])
def test_vectorised_derivative_accuracy(act, dtype):
    """softplus' (sigmoid) and GELU's f' (Phi(z) + z phi(z), from a = z Phi(z)) against
    float64 references: within 3 ulp (GELU 4) of the larger term of f' (GELU's f' crosses 0
    at -0.75, where its two terms cancel; float64: 8 ulp), and
    within |z| times the flush point (exp(-87.3) = 1.22e-38, exp(-708)) where that is
    larger (z phi(z) with phi flushed to 0)."""
    z = _sweep(dtype)
    z64 = z.astype(np.float64)
    with np.errstate(all="ignore"):
        if act == "softplus":
            want = _reference("sigmoid", z64)
            scale = np.abs(want)
        else:
            cdf, pdf = _normal_cdf_pdf_reference(z64)
            zpdf = z64 * pdf
            want = cdf + zpdf
            scale = np.maximum(np.abs(cdf), np.abs(zpdf))
    D = np.ones((1, z.size), dtype)
    Zc = z.reshape(1, -1).copy()
    A = np.empty_like(Zc)
    K.bias_activation(Zc, np.zeros(z.size, dtype), ACTIVATION_CODES[act], A)
    from fastbp.kernels.cpu.activation import mul_activation_grad_2d
    mul_activation_grad_2d(Zc, A, ACTIVATION_CODES[act], D)
    err = np.abs(D[0].astype(np.float64) - want)
    if dtype == np.float32:
        tiny = math.exp(-87.3) * np.maximum(1, np.abs(z64))  # z phi(z) with phi flushed
        bound = (4 if act == "gelu" else 3) * np.spacing(scale.astype(np.float32)).astype(np.float64)
    else:
        tiny = math.exp(-708) * np.maximum(1, np.abs(z64))  # z phi(z) with phi flushed
        bound = 8 * np.spacing(scale)
    bad = (err > bound) & (err > tiny)
    assert not bad.any(), (z[bad][:5], err[bad][:5], want[bad][:5])


@pytest.mark.parametrize("dtype", DTYPES)
def test_threaded_activation_passes_give_the_same_bits(dtype):
    """A threaded net's activation passes (``threaded=True``) split their rows over the
    threads for softplus and GELU when large (activation.py, ``PARALLEL_MIN_ACT_ELEMENTS``):
    every activation gives the unsplit pass's bits, forward and derivative, and the split
    path did run (its parallel functions compiled)."""
    from fastbp.kernels.cpu import activation as act_mod
    rng = np.random.default_rng(3)
    n, m = 131, 127  # 16,637 elements: just past the threshold, odd row split
    assert n * m >= act_mod.PARALLEL_MIN_ACT_ELEMENTS
    for act, code in ACTIVATION_CODES.items():
        if act == "softmax":
            continue
        Z0 = (rng.standard_normal((n, m)) * 3).astype(dtype)
        b = rng.standard_normal(m).astype(dtype)
        D0 = rng.standard_normal((n, m)).astype(dtype)
        out = []
        for threaded in (None, True):
            Z, A, D = Z0.copy(), np.empty_like(Z0), D0.copy()
            act_mod.bias_activation(Z, b, code, A, None, threaded)
            act_mod.mul_activation_grad_2d(Z, A, code, D, None, threaded)
            out.append((Z, A, D))
        for got, want in zip(out[1], out[0]):
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), act
    assert act_mod._bias_activation_parallel.signatures
    assert act_mod._grad_parallel.signatures


def test_only_softplus_and_gelu_nets_compile_split_activation_passes():
    """The split passes compile only for a ``uses`` set with softplus or GELU: the nets of
    plain or one-exp activations (ReLU, tanh and the like) keep none in their threaded
    code."""
    from fastbp.kernels.activations import GELU, RELU, SOFTMAX, SOFTPLUS, TANH
    from fastbp.kernels.cpu import activation as act_mod
    from fastbp.kernels.cpu.uses import Uses, UsesType
    from numba import typeof
    for codes, splits in (([RELU, SOFTMAX], False), ([TANH, SOFTMAX], False),
                          ([GELU, SOFTMAX], True), ([SOFTPLUS, TANH], True)):
        uses = typeof(Uses.for_network(codes))
        assert isinstance(uses, UsesType)
        assert act_mod._any_of(uses, act_mod._SPLIT) == splits, codes

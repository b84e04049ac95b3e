"""Property-based tests (hypothesis): every CPU kernel of ``fastbp.kernels`` against a float64
NumPy reference, over random shapes (including 0 and 1 rows/columns), values and dtypes.

Examples are derandomized (reproducible in CI); ``HYPOTHESIS_PROFILE=thorough`` runs 10x more
with fresh randomness.
"""
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import log_softmax

import fastbp.kernels as K
from fastbp.kernels.activations import ACTIVATION_CODES, LOSS_CODES, LOSS_OUTPUTS

import reference as R

settings.register_profile("default", max_examples=30, deadline=None, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

DTYPES = st.sampled_from([np.float32, np.float64])
ELEMENTWISE = [a for a in ACTIVATION_CODES if a != "softmax"]
PAIRINGS = [(out, loss) for loss, outs in LOSS_OUTPUTS.items() for out in outs]
EPS = {np.float32: 2e-6, np.float64: 1e-14}
TINY = {dt: float(np.finfo(dt).tiny) * 16 for dt in (np.float32, np.float64)}  # underflow


def arrays(draw, dtype, shape, lo=-4.0, hi=4.0):
    elems = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=32)
    return draw(hnp.arrays(dtype, shape, elements=elems))


def assert_close(got, want, dtype, scale, rtol=None):
    """|got - want| <= rtol * |want| + eps(dtype) * 50 * scale (scale: magnitude of the
    terms that were summed, so accumulated rounding is allowed for, nothing more)."""
    eps = EPS[dtype]
    np.testing.assert_allclose(got, want, rtol=rtol or eps * 50, atol=eps * 50 * scale + TINY[dtype])


def _f(act, z):
    with np.errstate(over="ignore"):
        return R.ACT[act](z)


def _fprime(act, z):
    with np.errstate(over="ignore"):
        return R.ACT_GRAD[act](z)


# --- forward -------------------------------------------------------------------------------------
@given(data=st.data(), act=st.sampled_from(list(ACTIVATION_CODES)), dtype=DTYPES,
       n=st.integers(0, 9), n_in=st.integers(1, 9), n_out=st.integers(1, 7))
def test_forward(data, act, dtype, n, n_in, n_out):
    A_prev = arrays(data.draw, dtype, (n, n_in))
    W = arrays(data.draw, dtype, (n_in, n_out))
    b = arrays(data.draw, dtype, (n_out,))
    Z = np.full((n, n_out), np.nan, dtype)
    A = np.full((n, n_out), np.nan, dtype)
    K.forward(A_prev, W, b, ACTIVATION_CODES[act], Z, A)
    if n == 0:
        return
    A64, W64 = A_prev.astype(np.float64), W.astype(np.float64)
    Zr = A64 @ W64 + b
    mag = np.abs(A64) @ np.abs(W64) + np.abs(b)
    assert_close(Z, Zr, dtype, mag.max())
    # the activation is applied to the kernel's own Z: compare f(Z) with f in float64
    want = _f(act, Z.astype(np.float64))
    assert np.isfinite(A).all()
    assert_close(A, want, dtype, max(1.0, np.abs(want).max()), rtol=EPS[dtype] * 200)
    if act == "softmax":
        assert_close(A.sum(1), np.ones(n), dtype, n_out)


# --- output_delta and loss_sum, per (output, loss) pairing ---------------------------------------
def _targets(draw, loss, n, k, dtype):
    if loss == "cross_entropy":
        if draw(st.booleans()):
            labels = draw(hnp.arrays(np.int64, n, elements=st.integers(0, k - 1)))
            return R.onehot(labels, k).astype(dtype)
        P = arrays(draw, np.float64, (n, k), 0.0, 1.0) + 1e-3  # probability rows
        return (P / P.sum(1, keepdims=True)).astype(dtype)
    if loss == "binary_cross_entropy":
        return arrays(draw, dtype, (n, k), 0.0, 1.0)
    return arrays(draw, dtype, (n, k))


@given(data=st.data(), pairing=st.sampled_from(PAIRINGS), dtype=DTYPES,
       n=st.integers(1, 8), k=st.integers(1, 6))
def test_output_delta_and_loss_sum(data, pairing, dtype, n, k):
    out, loss = pairing
    if out == "softmax":
        k = max(k, 2)
    Z = arrays(data.draw, dtype, (n, k), -30.0, 30.0)
    Z64 = Z.astype(np.float64)
    A = _f(out, Z64).astype(dtype)
    Y = _targets(data.draw, loss, n, k, dtype)
    A64, Y64 = A.astype(np.float64), Y.astype(np.float64)
    code, lc = ACTIVATION_CODES[out], LOSS_CODES[loss]
    scale = 1.0 / (n * k) if loss == "mse" else 1.0 / n

    got = K.loss_sum(Z, A, Y, code, lc)
    if loss == "mse":
        want = ((A64 - Y64) ** 2).sum() / (2 * k)
    elif loss == "binary_cross_entropy":
        want = (np.logaddexp(0.0, Z64) - Y64 * Z64).sum()
    else:
        want = -(Y64 * log_softmax(Z64, axis=1)).sum()
    assert np.isfinite(got)
    # per-sample terms are evaluated in the data's dtype, accumulated in float64
    terms = n * k * (1.0 + np.abs(Z64).max() + np.abs(A64).max() + np.abs(Y64).max()) ** 2
    assert_close(got, want, dtype, terms)

    delta = np.full((n, k), np.nan, dtype)
    K.output_delta(Z, A, Y, code, lc, scale, delta)
    G = (A64 - Y64) * scale
    if loss != "mse":
        want = G
    elif out == "softmax":
        want = A64 * (G - (G * A64).sum(1, keepdims=True))
    else:
        want = G * _fprime(out, Z64)
    assert np.isfinite(delta).all()
    assert_close(delta, want, dtype, scale * (1 + np.abs(A64).max() + np.abs(Y64).max()) * 4,
                 rtol=EPS[dtype] * 200)


# --- hidden_delta ---------------------------------------------------------------------------------
@given(data=st.data(), act=st.sampled_from(ELEMENTWISE), dtype=DTYPES,
       n=st.integers(0, 8), n_hidden=st.integers(1, 8), n_next=st.integers(1, 6))
def test_hidden_delta(data, act, dtype, n, n_hidden, n_next):
    Dn = arrays(data.draw, dtype, (n, n_next))
    W = arrays(data.draw, dtype, (n_hidden, n_next))
    Z = arrays(data.draw, dtype, (n, n_hidden), -8.0, 8.0)
    A = _f(act, Z.astype(np.float64)).astype(dtype)
    delta = np.full((n, n_hidden), np.nan, dtype)
    K.hidden_delta(Dn, W, Z, A, ACTIVATION_CODES[act], delta)
    if n == 0:
        return
    D64, W64, Z64 = Dn.astype(np.float64), W.astype(np.float64), Z.astype(np.float64)
    back = D64 @ W64.T
    mag = np.abs(D64) @ np.abs(W64).T
    fp = _fprime(act, Z64)
    # f' is evaluated from the dtype-rounded activations (a * (1 - a) and friends): allow the
    # rounding of A as well as of the product
    want = back * fp
    tol = EPS[dtype] * 50 * (mag * (np.abs(fp) + 4)).max() + TINY[dtype]
    np.testing.assert_allclose(delta, want, rtol=EPS[dtype] * 200, atol=tol)


# --- weight_gradients -----------------------------------------------------------------------------
@given(data=st.data(), dtype=DTYPES, n=st.integers(0, 10), n_in=st.integers(1, 8),
       n_out=st.integers(1, 7))
def test_weight_gradients(data, dtype, n, n_in, n_out):
    A_prev = arrays(data.draw, dtype, (n, n_in))
    D = arrays(data.draw, dtype, (n, n_out))
    dW = np.full((n_in, n_out), np.nan, dtype)
    db = np.full(n_out, np.nan, dtype)
    K.weight_gradients(A_prev, D, dW, db)
    A64, D64 = A_prev.astype(np.float64), D.astype(np.float64)
    assert_close(dW, A64.T @ D64, dtype, (np.abs(A64).T @ np.abs(D64)).max(initial=0.0))
    assert_close(db, D64.sum(0), dtype, np.abs(D64).sum(0).max(initial=0.0))


# --- optimizer updates ---------------------------------------------------------------------------
@given(data=st.data(), dtype=DTYPES, size=st.integers(1, 300),
       lr=st.floats(1e-4, 1.0), momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
       nesterov=st.booleans(), wd=st.sampled_from([0.0, 1e-4, 0.1]), steps=st.integers(1, 4))
def test_sgd_update(data, dtype, size, lr, momentum, nesterov, wd, steps):
    p = arrays(data.draw, dtype, (size,))
    v = np.zeros(size, dtype)
    pr, vr = p.astype(np.float64), np.zeros(size)
    mag = np.abs(pr).max()
    for _ in range(steps):
        g = arrays(data.draw, dtype, (size,))
        K.sgd_update(p, g, v, lr, momentum, nesterov, wd)
        pr, vr = R.sgd(pr, g.astype(np.float64), vr, lr, momentum, nesterov, wd)
        mag = max(mag, np.abs(pr).max(), lr * 4 * steps / (1 - momentum) * 3)
    assert_close(p, pr, dtype, mag * steps * 4)
    if momentum:
        assert_close(v, vr, dtype, np.abs(vr).max() * steps * 4 + 4 * steps)


@given(data=st.data(), dtype=DTYPES, size=st.integers(1, 300), lr=st.floats(1e-4, 0.1),
       beta1=st.sampled_from([0.0, 0.9]), beta2=st.sampled_from([0.9, 0.999]),
       eps=st.sampled_from([1e-8, 1e-3]), wd=st.sampled_from([0.0, 0.01]),
       decoupled=st.booleans(), steps=st.integers(1, 4))
def test_adam_update(data, dtype, size, lr, beta1, beta2, eps, wd, decoupled, steps):
    p = arrays(data.draw, dtype, (size,))
    m, v = np.zeros(size, dtype), np.zeros(size, dtype)
    pr, mr, vr = p.astype(np.float64), np.zeros(size), np.zeros(size)
    for t in range(1, steps + 1):
        g = arrays(data.draw, dtype, (size,))
        K.adam_update(p, g, m, v, t, lr, beta1, beta2, eps, wd, decoupled)
        pr, mr, vr = R.adam(pr, g.astype(np.float64), mr, vr, t, lr, beta1, beta2, eps, wd,
                            decoupled)
    # Adam's step is lr * m_hat / (sqrt(v_hat) + eps): each of the ``steps`` moves is at most
    # ~lr/(1 - beta1) in size, with a relative rounding error of a few eps.
    scale = np.abs(pr).max() + steps * lr * 10
    tol = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(p, pr, rtol=tol, atol=tol * scale)
    assert_close(m, mr, dtype, 8 * steps)
    assert_close(v, vr, dtype, 32 * steps)


# --- the row helpers the kernels are built from ----------------------------------------------------
@given(data=st.data(), dtype=DTYPES, m=st.integers(1, 12))
def test_softmax_row(data, dtype, m):
    z = arrays(data.draw, dtype, (m,), -1e4, 1e4)
    a = np.full(m, np.nan, dtype)
    K.softmax_row(z, a)
    z64 = z.astype(np.float64)
    want = np.exp(z64 - z64.max())
    want /= want.sum()
    assert np.isfinite(a).all()
    assert_close(a, want, dtype, 4 * m)


@given(data=st.data(), act=st.sampled_from(ELEMENTWISE), dtype=DTYPES, m=st.integers(1, 12))
def test_mul_activation_grad(data, act, dtype, m):
    z = arrays(data.draw, dtype, (m,), -20.0, 20.0)
    a = _f(act, z.astype(np.float64)).astype(dtype)
    d = arrays(data.draw, dtype, (m,))
    d0 = d.astype(np.float64)
    K.mul_activation_grad(z, a, ACTIVATION_CODES[act], d)
    want = d0 * _fprime(act, z.astype(np.float64))
    np.testing.assert_allclose(d, want, rtol=EPS[dtype] * 200,
                               atol=EPS[dtype] * 50 * (np.abs(d0).max() * 4) + TINY[dtype])

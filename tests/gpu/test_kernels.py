"""Each CUDA kernel against an independent float64 NumPy reference (tests/gpu/reference.py),
on odd shapes (batch 1, width 1, tiles spanning several blocks) in float32 and float64."""
import numpy as np
import pytest
from numba import cuda

from fastbp.kernels import cuda as K
from fastbp.kernels.cuda import scalar

from . import reference as R
from .reference import tol

SHAPES = [(1, 1, 1), (1, 5, 3), (9, 1, 7), (17, 11, 6), (10, 9, 1)]  # (n, n_in, n_out)
DTYPES = ["float32", "float64"]


def dev(a, dtype):
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))


def close(got, want, dtype):
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


@cuda.jit
def _apply_scalar(z, a, g):
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        for c in range(8):
            a[c, i] = scalar.activate(z[i], c)
            g[c, i] = scalar.activate_grad(z[i], a[c, i], c)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_device_functions(dtype):
    z = np.array([-30.0, -3.0, -0.5, -1e-3, 0.0, 1e-3, 0.7, 2.5, 30.0])
    a = cuda.device_array((8, z.size), dtype)
    g = cuda.device_array((8, z.size), dtype)
    _apply_scalar[2, 4](dev(z, dtype), a, g)
    for c in R.ELEMENTWISE:
        close(a.copy_to_host()[c], R.act(z.astype(dtype), c), dtype)
        if c != R.RELU and c != R.LEAKY_RELU:  # kinks at 0 follow the z > 0 convention
            close(g.copy_to_host()[c], R.act_grad(z.astype(dtype), c), dtype)
        else:
            close(g.copy_to_host()[c], np.where(z > 0, 1.0, 0.0 if c == R.RELU else 0.01),
                  dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_shapes(shape, dtype):
    n, n_in, n_out = shape
    rng = np.random.default_rng(n * 100 + n_in)
    X, W, b = rng.normal(size=(n, n_in)), rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)
    for code in (R.RELU, R.SOFTMAX):
        Z = cuda.device_array((n, n_out), dtype)
        A = cuda.device_array((n, n_out), dtype)
        K.forward(dev(X, dtype), dev(W, dtype), dev(b, dtype), code, Z, A)
        Zr = X.astype(dtype).astype(np.float64) @ W.astype(dtype) + b.astype(dtype)
        close(Z.copy_to_host(), Zr, dtype)
        close(A.copy_to_host(), R.act(Zr, code), dtype)


@pytest.mark.parametrize("code", list(R.ELEMENTWISE) + [R.SOFTMAX])
def test_forward_every_activation(code):
    rng = np.random.default_rng(code)
    X, W, b = rng.normal(size=(11, 6)), rng.normal(size=(6, 9)), rng.normal(size=9)
    Z = cuda.device_array((11, 9))
    A = cuda.device_array((11, 9))
    K.forward(dev(X, "float64"), dev(W, "float64"), dev(b, "float64"), code, Z, A)
    close(A.copy_to_host(), R.act(X @ W + b, code), "float64")


def test_softmax_is_stable_for_huge_logits():
    X = np.array([[1.0], [-1.0]])
    W = np.array([[1000.0, 0.0, -1000.0]])
    Z = cuda.device_array((2, 3))
    A = cuda.device_array((2, 3))
    K.forward(dev(X, "float64"), dev(W, "float64"), dev(np.zeros(3), "float64"), R.SOFTMAX, Z, A)
    np.testing.assert_allclose(A.copy_to_host(), [[1, 0, 0], [0, 0, 1]], atol=1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hidden_delta(shape, dtype):
    n, n_h, n_next = shape
    rng = np.random.default_rng(7 + n_h)
    Dn, W = rng.normal(size=(n, n_next)), rng.normal(size=(n_h, n_next))
    Z = rng.normal(size=(n, n_h))
    for code in (R.TANH, R.GELU):
        Z_ = Z.astype(dtype)
        A = R.act(Z_, code)
        D = cuda.device_array((n, n_h), dtype)
        K.hidden_delta(dev(Dn, dtype), dev(W, dtype), dev(Z_, dtype), dev(A, dtype), code, D)
        want = (Dn.astype(dtype) @ W.astype(dtype).T.astype(np.float64)) * R.act_grad(Z_, code)
        close(D.copy_to_host(), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_weight_gradients(shape, dtype):
    n, n_in, n_out = shape
    rng = np.random.default_rng(3 + n)
    Ap, D = rng.normal(size=(n, n_in)).astype(dtype), rng.normal(size=(n, n_out)).astype(dtype)
    dW = cuda.device_array((n_in, n_out), dtype)
    db = cuda.device_array(n_out, dtype)
    K.weight_gradients(dev(Ap, dtype), dev(D, dtype), dW, db)
    close(dW.copy_to_host(), Ap.T.astype(np.float64) @ D, dtype)
    close(db.copy_to_host(), D.astype(np.float64).sum(0), dtype)


def test_reductions_are_deterministic():
    rng = np.random.default_rng(5)
    Ap, D = dev(rng.normal(size=(37, 5)), "float32"), dev(rng.normal(size=(37, 6)) * 1e3, "float32")
    outs = []
    for _ in range(2):
        dW, db = cuda.device_array((5, 6), np.float32), cuda.device_array(6, np.float32)
        K.weight_gradients(Ap, D, dW, db)
        outs.append((dW.copy_to_host(), db.copy_to_host()))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])


PAIRS = [(R.SOFTMAX, R.CE), (R.SIGMOID, R.BCE), (R.IDENTITY, R.MSE), (R.TANH, R.MSE),
         (R.SOFTMAX, R.MSE), (R.SIGMOID, R.MSE)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_code,loss_code", PAIRS)
def test_output_delta_and_loss(out_code, loss_code, dtype):
    rng = np.random.default_rng(out_code * 3 + loss_code)
    n, k = (9, 4) if out_code != R.SIGMOID else (1, 1)
    Z = (rng.normal(size=(n, k)) * 3).astype(dtype).astype(np.float64)
    if loss_code == R.CE:
        Y = np.eye(k)[rng.integers(0, k, n)]
    elif loss_code == R.BCE:
        Y = rng.integers(0, 2, (n, k)).astype(float)
    else:
        Y = rng.normal(size=(n, k))
    Y = Y.astype(dtype).astype(np.float64)
    A = R.act(Z, out_code).astype(dtype)
    delta = cuda.device_array((n, k), dtype)
    K.output_delta(dev(Z, dtype), dev(A, dtype), dev(Y, dtype), out_code, loss_code, 0.37, delta)
    close(delta.copy_to_host(), R.output_delta(Z, Y, out_code, loss_code, 0.37), dtype)
    got = K.loss_sum(dev(Z, dtype), dev(A, dtype), dev(Y, dtype), out_code, loss_code)
    close(got, R.row_losses(Z, Y, out_code, loss_code).sum(), dtype)


def test_output_delta_rejects_bad_pairing():
    z = cuda.device_array((2, 2))
    with pytest.raises(ValueError, match="cross_entropy needs softmax"):
        K.output_delta(z, z, z, R.IDENTITY, R.CE, 1.0, z)


def test_wrappers_reject_host_and_mixed_arrays():
    W = cuda.device_array((3, 2))
    with pytest.raises(ValueError, match="CUDA device array"):
        K.forward(np.zeros((4, 3)), W, cuda.device_array(2), R.RELU, cuda.device_array((4, 2)),
                  cuda.device_array((4, 2)))
    with pytest.raises(ValueError, match="one dtype"):
        K.forward(cuda.device_array((4, 3), np.float32), W, cuda.device_array(2), R.RELU,
                  cuda.device_array((4, 2)), cuda.device_array((4, 2)))
    with pytest.raises(ValueError, match="shape"):
        K.forward(cuda.device_array((4, 3)), W, cuda.device_array(3), R.RELU,
                  cuda.device_array((4, 2)), cuda.device_array((4, 2)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mom,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.01),
                                             (0.8, True, 0.1)])
def test_sgd_update(mom, nesterov, wd, dtype):
    rng = np.random.default_rng(11)
    p, g, v = (rng.normal(size=37) for _ in range(3))
    pd, vd = dev(p, dtype), dev(v, dtype)
    K.sgd_update(pd, dev(g, dtype), vd, 0.05, mom, nesterov, wd)
    want_p, want_v = R.sgd(p.astype(dtype), g.astype(dtype), v.astype(dtype), 0.05, mom,
                           nesterov, wd)
    close(pd.copy_to_host(), want_p, dtype)
    if mom:
        close(vd.copy_to_host(), want_v, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled,wd", [(False, 0.0), (False, 0.05), (True, 0.05)])
def test_adam_update(decoupled, wd, dtype):
    rng = np.random.default_rng(12)
    p, g = rng.normal(size=29), rng.normal(size=29)
    m, v = rng.normal(size=29) * 0.1, rng.random(29) * 0.1
    pd, md, vd = dev(p, dtype), dev(m, dtype), dev(v, dtype)
    K.adam_update(pd, dev(g, dtype), md, vd, 3, 1e-2, 0.9, 0.999, 1e-8, wd, decoupled)
    wp, wm, wv = R.adam(*(a.astype(dtype) for a in (p, g, m, v)), 3, 1e-2, 0.9, 0.999, 1e-8,
                        wd, decoupled)
    close(pd.copy_to_host(), wp, dtype)
    close(md.copy_to_host(), wm, dtype)
    close(vd.copy_to_host(), wv, dtype)

"""Backprop against central differences, for every activation with every compatible loss."""
import zlib

import numpy as np
import pytest

import fastbp
from fastbp.kernels.activations import ACTIVATIONS, LOSS_OUTPUTS

import reference as R

HIDDEN = list(ACTIVATIONS)
CASES = [(act, out, loss) for act in HIDDEN for loss, outs in LOSS_OUTPUTS.items()
         for out in outs if out == act or out in ("softmax", "sigmoid", "identity")
         or loss == "mse"]
# every hidden activation with every (output, loss) pairing would be 8 x 10; this keeps each
# activation as hidden layer with each loss, and each output activation with mse
CASES = sorted(set(CASES))


def _data(loss, n, d, k, rng):
    X = rng.standard_normal((n, d))
    if loss == "cross_entropy":
        return X, rng.integers(0, k, n)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (n, k))
    return X, rng.standard_normal((n, k))


def _reference_gradients(net, X, Y):
    """Central differences of the reference float64 loss, over every parameter."""
    Ws, bs = net.weights, net.biases
    params = Ws + bs
    acts = net.activations + [net.output]
    h = 1e-5  # 4th-order central stencil: truncation ~h^4, round-off ~eps_mach * L / h

    def L():
        return R.loss(net.loss_name, R.forward(Ws, bs, acts, X)[1][-1], Y)

    grads = []
    for p in params:
        g = np.zeros_like(p)
        for idx in np.ndindex(*p.shape):
            old = p[idx]
            f = []
            for step in (2 * h, h, -h, -2 * h):
                p[idx] = old + step
                f.append(L())
            p[idx] = old
            g[idx] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h)
        grads.append(g)
    return grads


# one worker for every case (README's ``--dist loadgroup``): cases of one activation set
# (kernels/cpu/uses.py) share a compiled backward pass, which two workers each compiled
@pytest.mark.xdist_group("gradcheck")
@pytest.mark.parametrize("act,out,loss", CASES)
def test_gradients_match_central_differences(act, out, loss):
    rng = np.random.default_rng(zlib.crc32(f"{act}-{out}-{loss}".encode()))
    k = 3
    net = fastbp.Network([4, 5, 3, k], activation=act, output=out, loss=loss, dtype="float64",
                         seed=1)
    while True:  # keep every hidden pre-activation away from the kinks of relu-like functions
        X, y = _data(loss, 6, 4, k, rng)
        Z, _ = R.forward(net.weights, net.biases, net.activations + [net.output], X)
        if min(np.abs(z).min() for z in Z[:-1]) > 1e-3:
            break
    Y = R.onehot(y, k) if loss == "cross_entropy" else y.astype(float)
    dWs, dbs = net.gradients(X, y)
    want = _reference_gradients(net, X, Y)
    got = dWs + dbs
    scale = max(np.abs(w).max() for w in want)
    for g, w in zip(got, want):
        err = np.abs(g - w) / np.maximum(np.maximum(np.abs(g), np.abs(w)), 1e-3 * scale)
        assert err.max() < 1e-6, (act, out, loss, err.max())
    assert fastbp.gradient_check(net, X, y) < 1e-6


def test_gradient_check_detects_wrong_gradients(monkeypatch):
    """The checker itself can fail: corrupt backprop and it must report a large error."""
    net = fastbp.Network([3, 4, 2], activation="tanh", dtype="float64", seed=0)
    X, y = np.random.default_rng(0).standard_normal((5, 3)), np.array([0, 1, 1, 0, 1])
    assert fastbp.gradient_check(net, X, y) < 1e-6
    from fastbp import _engine_cpu
    original = _engine_cpu.CPUEngine.loss_and_gradients

    def broken(self, X, Y, with_grads=True):
        loss, g = original(self, X, Y, with_grads)
        return loss, (None if g is None else g * 1.01)

    monkeypatch.setattr(_engine_cpu.CPUEngine, "loss_and_gradients", broken)
    assert fastbp.gradient_check(net, X, y) > 1e-3


def test_gradients_leave_parameters_untouched():
    net = fastbp.Network([3, 4, 2], seed=0)
    before = net.get_flat_parameters()
    net.gradients(np.ones((4, 3)), [0, 1, 0, 1])
    np.testing.assert_array_equal(before, net.get_flat_parameters())


def test_float32_gradients_close_to_float64():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((20, 6)), rng.integers(0, 4, 20)
    n32 = fastbp.Network([6, 8, 4], activation="gelu", seed=2)
    n64 = fastbp.Network([6, 8, 4], activation="gelu", dtype="float64", seed=2)
    n64.set_parameters(n32.weights, n32.biases)
    for a, b in zip(sum(n32.gradients(X, y), []), sum(n64.gradients(X, y), [])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

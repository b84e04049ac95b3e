"""``Uses`` (kernels/cpu/uses.py): kernels compiled for a set of activations, losses and
optimizers compute exactly what the all-code kernels compute, and raise for codes left out."""
import numpy as np
import pytest

import fastbp.kernels as K
from fastbp.kernels.activations import (ACTIVATION_CODES, ADAM, BINARY_CROSS_ENTROPY,
                                        CROSS_ENTROPY, IDENTITY, MSE, RELU, SGD, SIGMOID,
                                        SOFTMAX, TANH)
from fastbp.kernels.cpu import network as N
from fastbp.kernels.cpu.activation import mul_activation_grad_2d
from fastbp.kernels.cpu.uses import Uses

import reference as R


def test_uses_rejects_unknown_codes_by_name():
    with pytest.raises(ValueError, match="activation code 99"):
        Uses([99])
    with pytest.raises(ValueError, match="loss code 7"):
        Uses([RELU], loss=7)
    with pytest.raises(ValueError, match="optimizer code 5"):
        Uses([RELU], optimizer=5)
    assert Uses([RELU, SOFTMAX], CROSS_ENTROPY) == Uses([SOFTMAX, RELU], CROSS_ENTROPY)
    assert Uses([RELU]) != Uses([TANH])


@pytest.mark.parametrize("name", list(ACTIVATION_CODES))
def test_bias_activation_with_uses_matches_all_codes_and_reference(name):
    code = ACTIVATION_CODES[name]
    rng = np.random.default_rng(code)
    Z0 = rng.standard_normal((5, 7)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    Z1, A1 = Z0.copy(), np.empty_like(Z0)
    K.bias_activation(Z1, b, code, A1, Uses([code]))
    Z2, A2 = Z0.copy(), np.empty_like(Z0)
    K.bias_activation(Z2, b, code, A2)
    np.testing.assert_array_equal(A1, A2)
    np.testing.assert_array_equal(Z1, Z2)
    want = R.ACT[name]((Z0 + b).astype(np.float64))
    np.testing.assert_allclose(A1, want, rtol=1e-5, atol=1e-6)


def test_codes_outside_the_set_raise_by_name():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((4, 6)).astype(np.float32)
    A = np.full_like(Z, 7.0)
    with pytest.raises(ValueError, match="bias_activation: activation code"):
        K.bias_activation(Z.copy(), np.zeros(6, np.float32), TANH, A, Uses([RELU]))
    assert (A == 7.0).all()
    D = np.ones_like(Z)
    with pytest.raises(ValueError, match="mul_activation_grad_2d: activation code"):
        mul_activation_grad_2d(Z, Z, SIGMOID, D, Uses([RELU]))
    assert (D == 1.0).all()
    with pytest.raises(ValueError, match="loss_sum: loss code not in uses"):
        K.loss_sum(Z, Z, Z, IDENTITY, MSE, Uses([IDENTITY], CROSS_ENTROPY))
    # unknown codes raise with every code compiled too
    with pytest.raises(ValueError, match="bias_activation: activation code"):
        K.bias_activation(Z.copy(), np.zeros(6, np.float32), 99, A)
    with pytest.raises(ValueError, match="mul_activation_grad_2d: activation code"):
        mul_activation_grad_2d(Z, Z, SOFTMAX, D)


@pytest.mark.parametrize("name", [n for n in ACTIVATION_CODES if n != "softmax"])
def test_activation_derivative_with_uses_matches_all_codes(name):
    code = ACTIVATION_CODES[name]
    rng = np.random.default_rng(10 + code)
    Z = rng.standard_normal((6, 9))
    A = R.ACT[name](Z)
    D1, D2 = np.ones_like(Z), np.ones_like(Z)
    mul_activation_grad_2d(Z, A, code, D1, Uses([code]))
    mul_activation_grad_2d(Z, A, code, D2)
    np.testing.assert_array_equal(D1, D2)
    assert not np.array_equal(D1, np.ones_like(Z)) or name == "identity"


@pytest.mark.parametrize("loss, out", [(MSE, IDENTITY), (BINARY_CROSS_ENTROPY, SIGMOID),
                                       (CROSS_ENTROPY, SOFTMAX)])
def test_loss_sum_with_uses_matches_all_codes(loss, out):
    rng = np.random.default_rng(loss)
    Z = rng.standard_normal((8, 4))
    A = np.empty_like(Z)
    K.bias_activation(Z.copy(), np.zeros(4), out, A)
    Y = (rng.random((8, 4)) < 0.5).astype(np.float64)
    got = K.loss_sum(Z, A, Y, out, loss, Uses([out], loss))
    assert got == K.loss_sum(Z, A, Y, out, loss)
    assert got > 0


@pytest.mark.parametrize("loss, out", [(MSE, IDENTITY), (BINARY_CROSS_ENTROPY, SIGMOID),
                                       (CROSS_ENTROPY, SOFTMAX)])
def test_batch_loss_sum_with_uses_matches_float64_reference(loss, out):
    """The drivers' loss (softmax + cross_entropy from the softmax's own values, other
    pairings through loss_sum), compiled for the one loss, against a float64 NumPy loss."""
    rng = np.random.default_rng(loss + 10)
    Z = rng.standard_normal((8, 4))
    A = np.empty_like(Z)
    K.bias_activation(Z.copy(), np.zeros(4), out, A)
    Y = np.eye(4)[rng.integers(0, 4, 8)] if loss == CROSS_ENTROPY else (
        (rng.random((8, 4)) < 0.5).astype(np.float64))
    if loss == MSE:
        want = ((A - Y) ** 2).sum() / (2 * 4)
    elif loss == BINARY_CROSS_ENTROPY:
        want = -(Y * np.log(A) + (1 - Y) * np.log(1 - A)).sum()
    else:
        want = -(Y * (Z - np.log(np.exp(Z).sum(1, keepdims=True)))).sum()
    got = N.batch_loss_sum(Z, A, Y, out, loss, Uses([out], loss))
    assert got == pytest.approx(want, rel=1e-12)


def test_batch_loss_sum_refuses_cross_entropy_without_softmax():
    """With only cross_entropy in the set, batch_loss_sum compiles no general loss: a
    non-softmax output (which no network can have with that loss) raises by name."""
    Z = np.zeros((3, 2))
    with pytest.raises(ValueError, match="batch_loss_sum: .*softmax"):
        N.batch_loss_sum(Z, Z, Z, IDENTITY, CROSS_ENTROPY, Uses([IDENTITY], CROSS_ENTROPY))
    # with every loss compiled, the same call computes loss_sum's value
    assert N.batch_loss_sum(Z, Z, Z, IDENTITY, CROSS_ENTROPY) == K.loss_sum(
        Z, Z, Z, IDENTITY, CROSS_ENTROPY)


def _fit_inputs(sizes, codes, loss, opt, dtype, seed=0, n=70, batch=16):
    rng = np.random.default_rng(seed)
    sizes = np.array(sizes, np.int64)
    codes = np.array(codes, np.int64)
    nw = int(N.n_weights(sizes))
    n_params = nw + int(sizes[1:].sum())
    params = (rng.standard_normal(n_params) * 0.3).astype(dtype)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    K_out = int(sizes[-1])
    if loss == CROSS_ENTROPY:
        Y = np.eye(K_out, dtype=dtype)[rng.integers(0, K_out, n)]
    elif loss == BINARY_CROSS_ENTROPY:
        Y = (rng.random((n, K_out)) < 0.5).astype(dtype)
    else:
        Y = rng.standard_normal((n, K_out)).astype(dtype)
    hyper = np.zeros(N.N_HYPER)
    hyper[[N.LR, N.MOMENTUM, N.NESTEROV, N.WEIGHT_DECAY, N.BIAS_DECAY, N.BETA1, N.BETA2,
           N.EPS]] = [0.05, 0.9, 1.0, 1e-3, 1.0, 0.9, 0.999, 1e-8]
    rows = min(batch, n)
    ws = (np.empty(rows * int(sizes.sum()), dtype), np.empty(rows * int(sizes[1:].sum()), dtype),
          np.empty((2, rows * int(sizes[1:].max())), dtype), np.empty((rows, K_out), dtype))
    order = rng.permutation(n).astype(np.int64)
    state = np.zeros((2, n_params), dtype)
    return (X, Y, order, batch, 0, (n + batch - 1) // batch, sizes, codes, loss, params,
            np.empty_like(params), state, opt, hyper, np.zeros(2, np.int64), *ws)


@pytest.mark.parametrize("sizes, codes, loss, opt, dtype", [
    ([6, 9, 4], [RELU, SOFTMAX], CROSS_ENTROPY, SGD, np.float32),
    ([5, 8, 7, 3], [TANH, RELU, IDENTITY], MSE, ADAM, np.float64),
    ([4, 6, 2], [SIGMOID, SIGMOID], BINARY_CROSS_ENTROPY, SGD, np.float32),
])
def test_train_batches_with_uses_is_bit_identical_to_all_codes(sizes, codes, loss, opt, dtype):
    a = _fit_inputs(sizes, codes, loss, opt, dtype)
    b = _fit_inputs(sizes, codes, loss, opt, dtype)
    out_a = N.train_batches(*a, None, None, Uses(codes, loss, opt))
    out_b = N.train_batches(*b)
    assert out_a == out_b
    params_a, params_b = a[9], b[9]
    np.testing.assert_array_equal(params_a, params_b)
    np.testing.assert_array_equal(a[11], b[11])  # optimizer state
    assert not np.array_equal(params_a, _fit_inputs(sizes, codes, loss, opt, dtype)[9])


def test_update_outside_the_set_raises_and_changes_nothing():
    rng = np.random.default_rng(3)
    params = rng.standard_normal(20)
    before = params.copy()
    grads = rng.standard_normal(20)
    state = np.zeros((2, 20))
    hyper = np.zeros(N.N_HYPER)
    hyper[N.LR] = 0.1
    step = np.zeros(1, np.int64)
    sgd_only = Uses([RELU], optimizer=SGD)
    with pytest.raises(ValueError, match="apply_update: optimizer code not in uses"):
        N.apply_update(params, grads, state, ADAM, hyper, step, 15, None, sgd_only)
    with pytest.raises(ValueError, match="update_is_finite: optimizer code not in uses"):
        N.update_is_finite(params, grads, state, ADAM, hyper, step, 15, None, sgd_only)
    np.testing.assert_array_equal(params, before)
    assert step[0] == 0
    N.apply_update(params, grads, state, SGD, hyper, step, 15, None, sgd_only)
    np.testing.assert_allclose(params, before - 0.1 * grads)


def test_for_network_has_three_activation_sets():
    plain = Uses.for_network([RELU, SOFTMAX], CROSS_ENTROPY, SGD)
    assert plain == Uses.for_network([IDENTITY, ACTIVATION_CODES["leaky_relu"], SOFTMAX],
                                     CROSS_ENTROPY, SGD)
    assert plain == Uses([IDENTITY, RELU, ACTIVATION_CODES["leaky_relu"], SOFTMAX],
                         CROSS_ENTROPY, SGD)
    every = Uses(range(SOFTMAX + 1), CROSS_ENTROPY, SGD)
    exp = Uses([IDENTITY, RELU, ACTIVATION_CODES["leaky_relu"], SOFTMAX, SIGMOID, TANH,
                ACTIVATION_CODES["elu"]], CROSS_ENTROPY, SGD)
    assert Uses.for_network([TANH, SOFTMAX], CROSS_ENTROPY, SGD) == exp
    assert Uses.for_network([RELU, SIGMOID], CROSS_ENTROPY, SGD) == exp
    assert Uses.for_network([ACTIVATION_CODES["elu"], TANH], CROSS_ENTROPY, SGD) == exp
    assert Uses.for_network([TANH, ACTIVATION_CODES["gelu"]], CROSS_ENTROPY, SGD) == every
    assert Uses.for_network([ACTIVATION_CODES["softplus"], SOFTMAX], CROSS_ENTROPY,
                            SGD) == every
    # the loss and the optimizer are kept exactly
    assert Uses.for_network([RELU, SOFTMAX], MSE, SGD) != plain
    assert Uses.for_network([RELU, SOFTMAX], CROSS_ENTROPY, ADAM) != plain


@pytest.mark.parametrize("activation, plain", [("tanh", False), ("relu", True)])
def test_the_engine_compiles_for_its_network_set(activation, plain):
    from fastbp import Network
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    net = Network([5, 8, 3], activation=activation, seed=0)
    net.fit(X, y, epochs=1, batch_size=8, optimizer="adam")
    code = ACTIVATION_CODES[activation]
    want = Uses.for_network([code, SOFTMAX], CROSS_ENTROPY, ADAM)
    assert (want == Uses([IDENTITY, RELU, ACTIVATION_CODES["leaky_relu"], SOFTMAX],
                         CROSS_ENTROPY, ADAM)) == plain
    assert any(str(t) == f"Uses({want.mask:#x})" for sig in N.train_batches.signatures
               for t in sig)

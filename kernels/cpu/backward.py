"""Backward kernels: loss value, output error, and the Hadamard delta recursion."""
import math

import numpy as np
from numba import njit
from numba.extending import overload

from ..activations import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE, SIGMOID, SOFTMAX
from .activation import mul_activation_grad_2d
from .gemm import matmul_nt
from .uses import uses_loss


@njit(cache=True, error_model="numpy")
def _mse_sum(A, Y):
    n, K = A.shape
    total = 0.0
    for i in range(n):
        for j in range(K):
            d = np.float64(A[i, j]) - np.float64(Y[i, j])  # float() keeps float32
            total += d * d
    return total / (2.0 * K)


@njit(cache=True, error_model="numpy")
def _bce_sum(Z, Y):
    n, K = Z.shape
    total = 0.0
    for i in range(n):
        for j in range(K):
            z = np.float64(Z[i, j])
            total += max(z, 0.0) - z * np.float64(Y[i, j]) + math.log1p(math.exp(-abs(z)))
    return total


@njit(cache=True, error_model="numpy")
def _ce_sum(Z, Y):
    n, K = Z.shape
    total = 0.0
    for i in range(n):
        zmax = -math.inf
        for j in range(K):
            zmax = max(zmax, np.float64(Z[i, j]))
        s = 0.0
        for j in range(K):
            s += math.exp(np.float64(Z[i, j]) - zmax)
        lse = zmax + math.log(s)
        for j in range(K):
            if Y[i, j] != 0:
                total += np.float64(Y[i, j]) * (lse - np.float64(Z[i, j]))
    return total


def _loss_if_used(fn, loss):
    """A stub ``run(X, Y, uses)`` calling ``fn(X, Y)`` where ``uses`` includes ``loss``, and
    raising ValueError (compiling nothing of ``fn``) elsewhere."""
    def run(X, Y, uses):
        raise NotImplementedError("call from @njit code")

    @overload(run, inline="always")
    def _run(X, Y, uses):
        if not uses_loss(uses, loss):
            def refuse(X, Y, uses):
                raise ValueError("loss_sum: loss code not in uses")
            return refuse
        return lambda X, Y, uses: fn(X, Y)
    return run


_mse_if_used = _loss_if_used(_mse_sum, MSE)
_bce_if_used = _loss_if_used(_bce_sum, BINARY_CROSS_ENTROPY)
_ce_if_used = _loss_if_used(_ce_sum, CROSS_ENTROPY)


@njit(cache=True, error_model="numpy")
def loss_sum(Z, A, Y, out_code, loss_code, uses=None):
    """Sum over the rows of the per-sample loss (divide by n for the mean). Returns float64.

    mse: per sample ``sum_j (a_j - y_j)**2 / (2 K)`` (so the mean over rows is
    ``((A - Y)**2).mean() / 2``). binary_cross_entropy (sigmoid output) and cross_entropy
    (softmax output) are computed from the logits Z in log-space, so they stay finite for any
    finite Z: ``max(z, 0) - z y + log1p(exp(-|z|))`` and ``sum_j y_j (logsumexp(z) - z_j)``.

    Parameters
    ----------
    Z : ndarray (n, K)
        Output pre-activations (logits).
    A : ndarray (n, K)
        Output activations ``f(Z)``.
    Y : ndarray (n, K)
        Targets (one-hot or probabilities for cross_entropy, 0/1 for binary_cross_entropy).
    out_code : int
        Output activation code.
    loss_code : int
        MSE, BINARY_CROSS_ENTROPY or CROSS_ENTROPY from ``fastbp.kernels.activations``.
    uses : Uses or None
        Compile only these losses (``uses.py``; another loss code raises ValueError). None
        (the default): every loss.

    Returns
    -------
    float
        The summed loss (float64).
    """
    if loss_code == MSE:
        return _mse_if_used(A, Y, uses)
    if loss_code == BINARY_CROSS_ENTROPY:
        return _bce_if_used(Z, Y, uses)
    if loss_code == CROSS_ENTROPY:
        return _ce_if_used(Z, Y, uses)
    raise ValueError("loss_sum: unknown loss code")


@njit(cache=True, error_model="numpy")
def _mse_chain(Z, A, out_code, delta, uses):
    """mse's ``delta *= f'(Z)``: through the Jacobian for softmax, elementwise otherwise."""
    n, K = A.shape
    if out_code == SOFTMAX:
        for i in range(n):
            s = 0.0
            for j in range(K):
                s += delta[i, j] * A[i, j]
            for j in range(K):
                delta[i, j] = A[i, j] * (delta[i, j] - s)
    else:  # the 2-D form: no per-row views, and one function less to compile
        mul_activation_grad_2d(Z, A, out_code, delta, uses)


def _mse_chain_if_used(Z, A, out_code, delta, uses):
    raise NotImplementedError("call from @njit code")


@overload(_mse_chain_if_used, inline="always")
def _mse_chain_if_used_impl(Z, A, out_code, delta, uses):
    if not uses_loss(uses, MSE):
        def refuse(Z, A, out_code, delta, uses):
            raise ValueError("output_delta: mse not in uses")
        return refuse
    return lambda Z, A, out_code, delta, uses: _mse_chain(Z, A, out_code, delta, uses)


@njit(cache=True, error_model="numpy")
def output_delta(Z, A, Y, out_code, loss_code, scale, delta, uses=None):
    """Output error ``delta = dC/dZ`` of the last layer, for a mean loss with factor ``scale``.

    For softmax + cross_entropy and sigmoid + binary_cross_entropy, ``delta = (A - Y) * scale``.
    For mse, ``delta = (A - Y) * scale ⊙ f'(Z)`` (through the Jacobian for softmax). Use
    ``scale = 1/n`` for the cross-entropies and ``1/(n*K)`` for mse over n rows, K outputs.
    Z, A, Y, delta: (n, K) C-contiguous, one dtype; overwrites delta only.

    Parameters
    ----------
    Z : ndarray (n, K)
        Output pre-activations.
    A : ndarray (n, K)
        Output activations.
    Y : ndarray (n, K)
        Targets.
    out_code : int
        Output activation code.
    loss_code : int
        Loss code; cross_entropy needs softmax and binary_cross_entropy needs sigmoid.
    scale : float
        Factor of the mean loss: ``1/n`` (cross-entropies) or ``1/(n*K)`` (mse).
    delta : ndarray (n, K)
        Output: ``dC/dZ``.
    uses : Uses or None
        As for ``loss_sum`` (and the output activation's derivative as for
        ``bias_activation``).

    Raises
    ------
    ValueError
        On a loss/output combination that has no delta.
    """
    n, K = A.shape
    for i in range(n):
        for j in range(K):
            delta[i, j] = (A[i, j] - Y[i, j]) * scale
    if loss_code == MSE:
        _mse_chain_if_used(Z, A, out_code, delta, uses)
    elif not ((loss_code == CROSS_ENTROPY and out_code == SOFTMAX)
              or (loss_code == BINARY_CROSS_ENTROPY and out_code == SIGMOID)):
        raise ValueError("output_delta: cross_entropy needs softmax, "
                         "binary_cross_entropy needs sigmoid")


@njit(cache=True, error_model="numpy", inline='always')  # into the drivers: network.py
def hidden_delta(delta_next, W_next, Z, A, code, delta, threaded=None, uses=None):
    """Delta recursion ``delta = (delta_next @ W_next.T) ⊙ f'(Z)`` for a hidden layer.

    delta_next (n, n_next), W_next (n_hidden, n_next), Z, A, delta (n, n_hidden): one dtype,
    C-contiguous; ``code`` is the layer's (elementwise) activation. Overwrites delta only.

    Parameters
    ----------
    delta_next : ndarray (n, n_next)
        Delta of the layer above.
    W_next : ndarray (n_hidden, n_next)
        Weights of the layer above.
    Z : ndarray (n, n_hidden)
        This layer's pre-activations.
    A : ndarray (n, n_hidden)
        This layer's activations.
    code : int
        This layer's (elementwise) activation code.
    delta : ndarray (n, n_hidden)
        Output: this layer's delta.
    threaded : bool or None
        Let a large product use Numba's threads (see ``gemm.matmul_nt``; None,
        the default, compiles no threaded code).
    uses : Uses or None
        As for ``mul_activation_grad_2d``.
    """
    if delta.shape[0] == 0:
        return
    matmul_nt(delta_next, W_next, delta, threaded)
    # the 2-D loop: a view per row costs a reference-count round trip, more than its arithmetic
    mul_activation_grad_2d(Z, A, code, delta, uses, threaded)

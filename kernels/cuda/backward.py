"""Backward kernels on device arrays: loss value, output error, fused delta recursion."""
import numpy as np
from numba import cuda

from ..activations import MSE, SOFTMAX
from . import config, gemm
from ._checks import check_same, check_shape, require
from .reduce import launch_sum
from .rows import (delta_elems_kernel, delta_softmax_mse_kernel, row_loss_kernel,
                   valid_pairing)


def output_delta_rows(Z, A, Y, out_code, loss_code, scale, m, delta):
    if m == 0:
        return
    blocks, tpb = config.grid_1d(m * Z.shape[1])
    delta_elems_kernel[blocks, tpb](Z, A, Y, m, out_code, loss_code, scale, delta)
    if loss_code == MSE and out_code == SOFTMAX:
        blocks, tpb = config.grid_1d(m)
        delta_softmax_mse_kernel[blocks, tpb](A, m, delta)


def output_delta(Z, A, Y, out_code, loss_code, scale, delta):
    """Output error ``delta = dC/dZ`` (contract of ``kernels.cpu.output_delta``).

    (A - Y) * scale for softmax + cross_entropy and sigmoid + binary_cross_entropy; for mse
    times f'(Z) (through the Jacobian for softmax). Z, A, Y, delta: (n, K) device arrays.
    """
    Z, A, Y, delta = check_same("output_delta", Z=Z, A=A, Y=Y, delta=delta)
    for name, arr in (("A", A), ("Y", Y), ("delta", delta)):
        check_shape("output_delta", name, arr, Z.shape)
    require(valid_pairing(int(out_code), int(loss_code)),
            "output_delta: cross_entropy needs softmax, binary_cross_entropy needs sigmoid")
    output_delta_rows(Z, A, Y, int(out_code), int(loss_code), float(scale), Z.shape[0], delta)


def row_losses(Z, A, Y, loss_code, m, rowloss):
    if m > 0:
        blocks, tpb = config.grid_1d(m)
        row_loss_kernel[blocks, tpb](Z, A, Y, m, loss_code, rowloss)


def loss_sum(Z, A, Y, out_code, loss_code):
    """Sum over rows of the per-sample loss, as a Python float (one device->host copy).

    Same formulas as ``kernels.cpu.loss_sum``; the sum is a deterministic tree in float64.
    """
    Z, A, Y = check_same("loss_sum", Z=Z, A=A, Y=Y)
    check_shape("loss_sum", "A", A, Z.shape)
    check_shape("loss_sum", "Y", Y, Z.shape)
    require(valid_pairing(int(out_code), int(loss_code)),
            "loss_sum: cross_entropy needs softmax, binary_cross_entropy needs sigmoid")
    n = Z.shape[0]
    rowloss = cuda.device_array(max(n, 1), np.float64)
    info = cuda.to_device(np.zeros(3, np.float64))
    row_losses(Z, A, Y, int(loss_code), n, rowloss)
    launch_sum(rowloss, n, info, 0)
    info = info.copy_to_host()
    return float(info[0]) if info[1] == 0 else float("nan")


def hidden_delta_rows(delta_next, W_next, Z, A, code, m, delta):
    n_hidden, n_next = W_next.shape
    gemm.launch(False, True, gemm.EPI_DGRAD, delta_next, W_next, delta, Z, A, code,
                m, n_hidden, n_next, delta, delta)


def hidden_delta(delta_next, W_next, Z, A, code, delta):
    """``delta = (delta_next @ W_next.T) ⊙ f'(Z)`` in one GEMM launch (f' in the epilogue).

    delta_next (n, n_next), W_next (n_hidden, n_next), Z, A, delta (n, n_hidden).
    """
    delta_next, W_next, Z, A, delta = check_same(
        "hidden_delta", delta_next=delta_next, W_next=W_next, Z=Z, A=A, delta=delta)
    require(W_next.ndim == 2 and Z.ndim == 2, "hidden_delta: W_next and Z must be 2-D")
    n, (n_hidden, n_next) = Z.shape[0], W_next.shape
    check_shape("hidden_delta", "delta_next", delta_next, (n, n_next))
    for name, arr in (("Z", Z), ("A", A), ("delta", delta)):
        check_shape("hidden_delta", name, arr, (n, n_hidden))
    require(int(code) != SOFTMAX, "hidden_delta: softmax is only allowed as the output")
    hidden_delta_rows(delta_next, W_next, Z, A, int(code), n, delta)

"""Layer-by-layer training driver on device arrays (the GPU twin of kernels.cpu.network).

Same flat parameter layout as the CPU: every W_l row-major in layer order, then every b_l.
The host launches one minibatch after another without ever synchronising: the batch loss is
reduced on the device into ``info = [loss total, status, batches ran]`` and the update kernels
skip themselves once ``info[1]`` flags a non-finite loss, so a chunk of batches costs a single
device->host copy of ``info`` at its end. Per minibatch: 1 gather, L GEMMs (+1 softmax),
2 loss, 1-2 output error, 3 per layer backward (GEMM, 2 bias reduction) + L-1 delta GEMMs,
1 update.
"""
import numpy as np
from numba import cuda

from ..activations import ADAM, MSE, SGD
from . import config
from .backward import hidden_delta_rows, output_delta_rows, row_losses
from .forward import forward_rows
from .gradients import weight_gradients_rows
from .reduce import launch_sum
from .updates import adam_kernel, sgd_kernel

# hyper-parameter slots, as kernels.cpu.network
LR, MOMENTUM, NESTEROV, WEIGHT_DECAY, BIAS_DECAY, BETA1, BETA2, EPS, DECOUPLED = range(9)
N_HYPER = 9


def n_weights(sizes):
    return int(sum(int(a) * int(b) for a, b in zip(sizes[:-1], sizes[1:])))


def param_views(flat, sizes):
    """(list of W_l views (n_in, n_out), list of b_l views) of a flat device vector."""
    Ws, bs = [], []
    w, b = 0, n_weights(sizes)
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        n_in, n_out = int(n_in), int(n_out)
        Ws.append(flat[w:w + n_in * n_out].reshape((n_in, n_out)))
        bs.append(flat[b:b + n_out])
        w += n_in * n_out
        b += n_out
    return Ws, bs


class Workspace:
    """Device buffers for batches of up to ``rows`` rows: A_l (A_0 = inputs), Z_l, two delta
    buffers used alternately, the batch targets, per-row losses and bias-gradient partials."""

    def __init__(self, sizes, rows, dtype):
        sizes = [int(s) for s in sizes]
        L = len(sizes) - 1
        self.rows = rows
        self.A = [cuda.device_array((rows, s), dtype) for s in sizes]
        self.Z = [None] + [cuda.device_array((rows, s), dtype) for s in sizes[1:]]
        wide = max(sizes[1:])
        bufs = [cuda.device_array(rows * wide, dtype) for _ in range(2)]
        self.D = [None] + [bufs[(L - l) % 2][:rows * sizes[l]].reshape((rows, sizes[l]))
                           for l in range(1, L + 1)]
        self.Y = cuda.device_array((rows, sizes[-1]), dtype)
        self.rowloss = cuda.device_array(max(rows, 1), np.float64)
        self.part = cuda.device_array((config.BIAS_SPLIT, wide), np.float64)


@cuda.jit
def gather_kernel(X, Y, order, r0, m, A0, Yb):
    """A0[r] = X[order[r0 + r]], Yb[r] = Y[order[r0 + r]] for r < m (one item per thread)."""
    d = X.shape[1]
    K = Y.shape[1]
    w = d + K
    for e in range(cuda.grid(1), m * w, cuda.gridsize(1)):
        r = e // w
        c = e - r * w
        src = order[r0 + r]
        if c < d:
            A0[r, c] = X[src, c]
        else:
            Yb[r, c - d] = Y[src, c - d]


def forward_network(Ws, bs, codes, m, ws):
    """Forward through every layer for the m rows already in ws.A[0]."""
    for l in range(len(Ws)):
        forward_rows(ws.A[l], Ws[l], bs[l], int(codes[l]), m, ws.Z[l + 1], ws.A[l + 1])


def backward_network(Ws, codes, loss_code, Y, m, ws, gWs, gbs):
    """Mean-loss gradients of the m-row batch (after forward_network) into gWs, gbs."""
    L = len(Ws)
    K = ws.A[L].shape[1]
    scale = 1.0 / (m * K) if loss_code == MSE else 1.0 / m
    output_delta_rows(ws.Z[L], ws.A[L], Y, int(codes[L - 1]), loss_code, scale, m, ws.D[L])
    for l in range(L - 1, -1, -1):
        weight_gradients_rows(ws.A[l], ws.D[l + 1], m, gWs[l], gbs[l], ws.part)
        if l > 0:
            hidden_delta_rows(ws.D[l + 1], Ws[l], ws.Z[l], ws.A[l], int(codes[l - 1]), m,
                              ws.D[l])


def batch_loss(codes, loss_code, Y, m, ws, info, b_rel):
    """Reduce the batch's loss into info (see reduce.block_sum)."""
    L = len(ws.A) - 1
    row_losses(ws.Z[L], ws.A[L], Y, loss_code, m, ws.rowloss)
    launch_sum(ws.rowloss, m, info, b_rel)


def apply_update(params, grads, state, opt, hyper, step, nw, info):
    """One optimizer step on the flat vector (weights: hyper[WEIGHT_DECAY]; biases: times
    hyper[BIAS_DECAY]); ``step`` is Adam's 1-based count for this update."""
    blocks, tpb = config.grid_1d(params.shape[0])
    wd = float(hyper[WEIGHT_DECAY])
    wd_b = wd * float(hyper[BIAS_DECAY])
    if opt == SGD:
        mom = float(hyper[MOMENTUM])
        vel = state[0] if mom != 0.0 else grads
        sgd_kernel[blocks, tpb](params, grads, vel, float(hyper[LR]), mom,
                                bool(hyper[NESTEROV] != 0.0), wd, wd_b, nw, info)
    elif opt == ADAM:
        adam_kernel[blocks, tpb](params, grads, state[0], state[1], int(step),
                                 float(hyper[LR]), float(hyper[BETA1]), float(hyper[BETA2]),
                                 float(hyper[EPS]), wd, wd_b, bool(hyper[DECOUPLED] != 0.0), nw,
                                 info)
    else:
        raise ValueError("apply_update: unknown optimizer code")


def train_batches(X, Y, order, batch_size, first, last, sizes, codes, loss_code, params, grads,
                  state, opt, hyper, step0, ws, info):
    """Launch minibatches first..last-1 (the semantics of kernels.cpu.train_batches) without
    synchronising. ``order`` is the epoch's sample order on the device; ``info`` a zeroed
    float64 (3,) device array that ends up as [loss sum, status, batches ran]; ``step0`` Adam's
    count before the first batch (batch b uses step0 + b - first + 1)."""
    n = order.shape[0]
    nw = n_weights(sizes)
    Ws, bs = param_views(params, sizes)
    gWs, gbs = param_views(grads, sizes)
    for b in range(first, last):
        r0 = b * batch_size
        m = min(n, r0 + batch_size) - r0
        blocks, tpb = config.grid_1d(m * (X.shape[1] + Y.shape[1]))
        gather_kernel[blocks, tpb](X, Y, order, r0, m, ws.A[0], ws.Y)
        forward_network(Ws, bs, codes, m, ws)
        batch_loss(codes, loss_code, ws.Y, m, ws, info, b - first)
        backward_network(Ws, codes, loss_code, ws.Y, m, ws, gWs, gbs)
        apply_update(params, grads, state, opt, hyper, step0 + b - first + 1, nw, info)

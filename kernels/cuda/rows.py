"""Row-wise and elementwise device functions: softmax, per-row losses, output error.

Each ``*_dev`` function walks its items from ``start`` by ``stride``, so the same code runs
as a grid-stride loop in a multi-block kernel (start = cuda.grid(1), stride = gridsize) and
as a block-stride loop inside the fused single-block kernel (start = threadIdx.x).
All act on the first ``m`` rows of 2-D arrays (workspaces may hold more rows).
"""
import math

from numba import cuda

from ..activations import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE, SIGMOID, SOFTMAX
from .scalar import activate_grad

_dev = cuda.jit(device=True)


@_dev
def softmax_rows_dev(Z, A, m, start, stride):
    """A[i] = softmax(Z[i]) shifted by the row max (exp never overflows)."""
    K = Z.shape[1]
    for i in range(start, m, stride):
        zmax = -math.inf
        for j in range(K):
            zmax = max(zmax, Z[i, j])
        total = 0.0
        for j in range(K):
            e = math.exp(Z[i, j] - zmax)
            A[i, j] = e
            total += e
        inv = 1.0 / total
        for j in range(K):
            A[i, j] *= inv


@_dev
def row_loss_dev(Z, A, Y, m, loss_code, rowloss, start, stride):
    """rowloss[i] (float64) = loss of sample i; the formulas of kernels.cpu.backward.loss_sum.

    mse: sum_j (a - y)^2 / (2K); binary cross-entropy and cross-entropy from the logits Z in
    log-space, so they stay finite for any finite Z.
    """
    K = Z.shape[1]
    for i in range(start, m, stride):
        s = 0.0
        if loss_code == MSE:
            for j in range(K):
                d = float(A[i, j]) - float(Y[i, j])
                s += d * d
            s = s / (2.0 * K)
        elif loss_code == BINARY_CROSS_ENTROPY:
            for j in range(K):
                z = float(Z[i, j])
                s += max(z, 0.0) - z * Y[i, j] + math.log1p(math.exp(-abs(z)))
        elif loss_code == CROSS_ENTROPY:
            zmax = -math.inf
            for j in range(K):
                zmax = max(zmax, float(Z[i, j]))
            t = 0.0
            for j in range(K):
                t += math.exp(Z[i, j] - zmax)
            lse = zmax + math.log(t)
            for j in range(K):
                if Y[i, j] != 0:
                    s += Y[i, j] * (lse - Z[i, j])
        rowloss[i] = s


@_dev
def delta_elems_dev(Z, A, Y, m, out_code, loss_code, scale, delta, start, stride):
    """delta = (A - Y) * scale, times f'(Z) for mse with an elementwise output."""
    K = Z.shape[1]
    with_grad = loss_code == MSE and out_code != SOFTMAX
    for e in range(start, m * K, stride):
        i = e // K
        j = e - i * K
        d = (A[i, j] - Y[i, j]) * scale
        if with_grad:
            d *= activate_grad(Z[i, j], A[i, j], out_code)
        delta[i, j] = d


@_dev
def delta_softmax_mse_dev(A, m, delta, start, stride):
    """delta[i] = A[i] * (delta[i] - <delta[i], A[i]>): the softmax Jacobian, after the above."""
    K = A.shape[1]
    for i in range(start, m, stride):
        s = 0.0
        for j in range(K):
            s += delta[i, j] * A[i, j]
        for j in range(K):
            delta[i, j] = A[i, j] * (delta[i, j] - s)


def valid_pairing(out_code, loss_code):
    return not ((loss_code == CROSS_ENTROPY and out_code != SOFTMAX)
                or (loss_code == BINARY_CROSS_ENTROPY and out_code != SIGMOID))


@cuda.jit
def softmax_rows_kernel(Z, A, m):
    softmax_rows_dev(Z, A, m, cuda.grid(1), cuda.gridsize(1))


@cuda.jit
def row_loss_kernel(Z, A, Y, m, loss_code, rowloss):
    row_loss_dev(Z, A, Y, m, loss_code, rowloss, cuda.grid(1), cuda.gridsize(1))


@cuda.jit
def delta_elems_kernel(Z, A, Y, m, out_code, loss_code, scale, delta):
    delta_elems_dev(Z, A, Y, m, out_code, loss_code, scale, delta, cuda.grid(1),
                    cuda.gridsize(1))


@cuda.jit
def delta_softmax_mse_kernel(A, m, delta):
    delta_softmax_mse_dev(A, m, delta, cuda.grid(1), cuda.gridsize(1))

"""Deterministic reductions (no float atomics): bias gradients and the batch loss.

Column sums run in two passes: pass 1 splits the rows into ``P`` chunks (blockIdx.y) and
writes each chunk's column sums to ``part[p, j]``; pass 2 adds the P partials in order. The
scalar sum runs in one block: each thread adds a fixed strided subset, then a fixed shared-
memory tree. The order of every addition depends only on the shapes and the launch
configuration, never on timing, so results repeat bit for bit.
"""
import math

import numpy as np
from numba import cuda, float64

_dev = cuda.jit(device=True)


@_dev
def col_sum_dev(D, r0, r1, j):
    s = 0.0  # float64 accumulation: float32 inputs lose nothing to the long sum
    for i in range(r0, r1):
        s += D[i, j]
    return s


@cuda.jit
def col_partials_kernel(D, m, part):
    """part[p, j] (float64) = sum of D[i, j] over the p-th chunk of rows [0, m)."""
    P = part.shape[0]
    N = D.shape[1]
    p = cuda.blockIdx.y
    chunk = (m + P - 1) // P
    r0 = min(m, p * chunk)
    r1 = min(m, r0 + chunk)
    for j in range(cuda.grid(1), N, cuda.gridsize(1)):
        part[p, j] = col_sum_dev(D, r0, r1, j)


@cuda.jit
def sum_partials_kernel(part, out):
    """out[j] = sum_p part[p, j], p in order."""
    for j in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        s = part[0, j]
        for p in range(1, part.shape[0]):
            s += part[p, j]
        out[j] = s


_sum_cache = {}


def _make_sum(tpb):
    @cuda.jit
    def block_sum(vals, n, info, b_rel):
        """Sum vals[:n] (float64) in one block. info (3,) float64 = [loss total, status,
        batches ran]: a finite sum is added to info[0] and info[2] = b_rel + 1; a non-finite
        one sets info[1] = 1 (status) and info[2] = b_rel. Nothing happens once info[1] != 0.
        """
        sh = cuda.shared.array(tpb, float64)
        t = cuda.threadIdx.x
        s = 0.0
        for i in range(t, n, tpb):
            s += vals[i]
        sh[t] = s
        cuda.syncthreads()
        h = tpb // 2
        while h > 0:
            if t < h:
                sh[t] += sh[t + h]
            cuda.syncthreads()
            h //= 2
        if t == 0 and info[1] == 0:
            tot = sh[0]
            if math.isfinite(tot):
                info[0] += tot
                info[2] = b_rel + 1
            else:
                info[1] = 1
                info[2] = b_rel

    return block_sum


def launch_sum(vals, n, info, b_rel):
    """Add sum(vals[:n]) into info (see block_sum). THREADS_PER_BLOCK must be a power of 2."""
    from . import config
    tpb = config.THREADS_PER_BLOCK
    if tpb & (tpb - 1):
        raise ValueError(f"config.THREADS_PER_BLOCK must be a power of two; got {tpb}")
    kern = _sum_cache.get(tpb)
    if kern is None:
        kern = _sum_cache[tpb] = _make_sum(tpb)
    kern[1, tpb](vals, n, info, b_rel)


def launch_col_sums(D, m, part, out):
    """out[j] = sum_{i<m} D[i, j] via part, a (P, N) float64 scratch."""
    from . import config
    N = D.shape[1]
    blocks, tpb = config.grid_1d(N)
    col_partials_kernel[(blocks, part.shape[0]), tpb](D, m, part)
    sum_partials_kernel[blocks, tpb](part, out)


def new_info():
    return cuda.to_device(np.zeros(3, np.float64))

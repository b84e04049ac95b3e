"""Tiled shared-memory GEMM with fused epilogues: the three matrix products of backprop.

``out (M, N) = op(A) (M, K) @ op(B) (K, N)`` where op transposes when asked, followed by:

* EPI_BIAS_ACT (forward):  ``Z = acc + b``, ``A = f(Z)`` (for softmax only Z: rows need a
  second pass, see rows.softmax_rows);
* EPI_DGRAD (hidden delta, ``Delta @ W.T``): ``delta = acc * f'(Z, A)``;
* EPI_STORE (weight gradient, ``A_prev.T @ Delta``): ``out = acc``.

Each block of TILE x TILE threads computes a (TILE*MICRO)^2 output tile; each thread owns a
MICRO x MICRO register micro-tile at stride TILE (so shared-memory reads of B are
consecutive across a warp and reads of A are broadcasts). Global loads are assigned so that
consecutive threadIdx.x read consecutive addresses for every transpose combination; shared
rows are padded by one to keep the transposed stores free of bank conflicts.

Kernels are compiled per (transposes, epilogue, TILE, MICRO, dtype) from one factory: those
values are closure constants, so shared/local shapes are compile-time and dead branches go.
"""
import numpy as np
from numba import cuda, float32, float64

from ..activations import SOFTMAX
from . import config
from .scalar import activate, activate_grad

EPI_STORE, EPI_BIAS_ACT, EPI_DGRAD = range(3)
_NB = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}
_cache = {}


def _make(trans_a, trans_b, epi, T, R, nbtype):
    BM = T * R  # rows (and columns) of the block tile
    TP, BP = T + 1, BM + 1  # padded shared rows; closure ints are compile-time constants

    @cuda.jit
    def gemm(A, B, bias, Zin, Ain, code, M, N, K, out, out2):
        As = cuda.shared.array((BM, TP), nbtype)
        Bs = cuda.shared.array((T, BP), nbtype)
        acc = cuda.local.array((R, R), nbtype)
        a_reg = cuda.local.array(R, nbtype)
        b_reg = cuda.local.array(R, nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BM
        for i in range(R):
            for j in range(R):
                acc[i, j] = 0
        for k0 in range(0, K, T):
            # stage op(A)[row0:row0+BM, k0:k0+T] and op(B)[k0:k0+T, col0:col0+BM]
            for i in range(R):
                if trans_a:  # A stored (K, M): walk M along threadIdx.x
                    r = tx + i * T
                    kk = ty
                    ok = row0 + r < M and k0 + kk < K
                    As[r, kk] = A[k0 + kk, row0 + r] if ok else 0
                else:
                    r = ty + i * T
                    kk = tx
                    ok = row0 + r < M and k0 + kk < K
                    As[r, kk] = A[row0 + r, k0 + kk] if ok else 0
                if trans_b:  # B stored (N, K): walk K along threadIdx.x
                    c = ty + i * T
                    kk = tx
                    ok = col0 + c < N and k0 + kk < K
                    Bs[kk, c] = B[col0 + c, k0 + kk] if ok else 0
                else:
                    c = tx + i * T
                    kk = ty
                    ok = col0 + c < N and k0 + kk < K
                    Bs[kk, c] = B[k0 + kk, col0 + c] if ok else 0
            cuda.syncthreads()
            for kk in range(T):
                for i in range(R):
                    a_reg[i] = As[ty + i * T, kk]
                    b_reg[i] = Bs[kk, tx + i * T]
                for i in range(R):
                    for j in range(R):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()
        for i in range(R):
            r = row0 + ty + i * T
            if r < M:
                for j in range(R):
                    c = col0 + tx + j * T
                    if c < N:
                        if epi == EPI_BIAS_ACT:
                            z = acc[i, j] + bias[c]
                            out[r, c] = z
                            if code != SOFTMAX:
                                out2[r, c] = activate(z, code)
                        elif epi == EPI_DGRAD:
                            out[r, c] = acc[i, j] * activate_grad(Zin[r, c], Ain[r, c], code)
                        else:
                            out[r, c] = acc[i, j]

    return gemm


def launch(trans_a, trans_b, epi, A, B, bias, Zin, Ain, code, M, N, K, out, out2):
    """Launch the GEMM variant on device arrays (no checks; the public wrappers check)."""
    T, R = config.TILE, config.MICRO
    key = (trans_a, trans_b, epi, T, R, out.dtype)
    kern = _cache.get(key)
    if kern is None:
        kern = _cache[key] = _make(trans_a, trans_b, epi, T, R, _NB[np.dtype(out.dtype)])
    if M == 0 or N == 0:
        return
    BM = T * R
    grid = ((N + BM - 1) // BM, (M + BM - 1) // BM)
    kern[grid, (T, T)](A, B, bias, Zin, Ain, code, M, N, K, out, out2)

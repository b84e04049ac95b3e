"""Weight and bias gradients of one layer."""
from numba import njit, types
from numba.extending import overload

from .gemm import matmul_tn
from .simd import lanes, vadd, vload, vstore, vzero
from .views import borrowed_flat


@njit(cache=True, error_model="numpy", inline='always')  # into the drivers: network.py
def weight_gradients(A_prev, delta, dW, db, threaded=None):
    """``dW = A_prev.T @ delta`` (the batch's outer products summed) and ``db = delta.sum(0)``.

    A_prev (n, n_in), delta (n, n_out), dW (n_in, n_out), db (n_out,): one dtype, C-contiguous.
    Overwrites dW and db. The bias sum runs over rows in order, so it is deterministic.

    Parameters
    ----------
    A_prev : ndarray (n, n_in)
        Activations of the layer below.
    delta : ndarray (n, n_out)
        This layer's delta (already scaled for the mean loss).
    dW : ndarray (n_in, n_out)
        Output: weight gradient.
    db : ndarray (n_out,)
        Output: bias gradient.
    threaded : bool or None
        Let a large product use Numba's threads (see ``gemm.matmul_tn``; None,
        the default, compiles no threaded code).
    """
    n, m = delta.shape
    if n == 0:
        db[:] = 0
        dW[:] = 0
        return
    matmul_tn(A_prev, delta, dW, threaded)
    bias_sums(delta, db)


def bias_sums(delta, db):
    """``db[:] = delta.sum(0)``, adding the rows in order (so deterministic)."""


@overload(bias_sums, jit_options={"cache": True, "error_model": "numpy"})
def _bias_sums_impl(delta, db):
    if not (isinstance(delta, types.Array) and delta.layout == "C" and db.layout == "C"
            and delta.dtype in (types.float32, types.float64) and db.dtype == delta.dtype):
        def rows(delta, db):
            n, m = delta.shape
            db[:] = 0
            for i in range(n):
                for j in range(m):
                    db[j] += delta[i, j]
        return rows

    def vectors(delta, db):
        # Each sum in row order as in the loop above (the same bits), but over blocks of 8
        # rows kept in registers, 4 vectors of columns at a time: db is loaded and stored once
        # a block instead of once a row. 8 rows: their column vectors are a row apart, and with
        # a power-of-two row (2048 floats) more of them would share one L1 set. Float32, one
        # process, median us: 32x128 0.18 -> 0.10, 32x10 0.11 -> 0.04, 128x256 1.36 -> 1.12,
        # 256x2048 21.1 -> 24.6.
        n, m = delta.shape
        d = borrowed_flat(delta)
        V = lanes(d)
        for i0 in range(0, max(n, 1), 8):
            i1 = min(n, i0 + 8)
            j = 0
            while j + 4 * V <= m:
                if i0 == 0:
                    a0, a1, a2, a3 = vzero(d), vzero(d), vzero(d), vzero(d)
                else:
                    a0, a1 = vload(db, j, V), vload(db, j + V, V)
                    a2, a3 = vload(db, j + 2 * V, V), vload(db, j + 3 * V, V)
                for i in range(i0, i1):
                    o = i * m + j
                    a0 = vadd(a0, vload(d, o, V))
                    a1 = vadd(a1, vload(d, o + V, V))
                    a2 = vadd(a2, vload(d, o + 2 * V, V))
                    a3 = vadd(a3, vload(d, o + 3 * V, V))
                vstore(db, j, V, a0)
                vstore(db, j + V, V, a1)
                vstore(db, j + 2 * V, V, a2)
                vstore(db, j + 3 * V, V, a3)
                j += 4 * V
            while j < m:
                acc = vzero(d) if i0 == 0 else vload(db, j, m - j)
                for i in range(i0, i1):
                    acc = vadd(acc, vload(d, i * m + j, m - j))
                vstore(db, j, m - j, acc)
                j += V
    return vectors

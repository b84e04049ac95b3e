"""Weight and bias gradients of one layer."""
from numba import njit

from .gemm import matmul_tn


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
    db[:] = 0
    if n == 0:
        dW[:] = 0
        return
    matmul_tn(A_prev, delta, dW, threaded)
    for i in range(n):
        for j in range(m):
            db[j] += delta[i, j]

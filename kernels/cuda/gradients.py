"""Weight and bias gradients of one layer on device arrays."""
import numpy as np
from numba import cuda

from . import config, gemm
from ._checks import check_same, check_shape, require
from .reduce import launch_col_sums


def weight_gradients_rows(A_prev, delta, m, dW, db, part):
    """dW = A_prev[:m].T @ delta[:m] (one GEMM launch), db = column sums of delta[:m] (two
    deterministic launches using ``part``, a (config.BIAS_SPLIT, >= n_out) float64 scratch)."""
    n_in, n_out = dW.shape
    gemm.launch(True, False, gemm.EPI_STORE, A_prev, delta, db, dW, dW, 0, n_in, n_out, m,
                dW, dW)
    launch_col_sums(delta, m, part, db)


def weight_gradients(A_prev, delta, dW, db):
    """``dW = A_prev.T @ delta``, ``db = delta.sum(0)`` (contract of kernels.cpu).

    A_prev (n, n_in), delta (n, n_out), dW (n_in, n_out), db (n_out,): device arrays.
    """
    A_prev, delta, dW, db = check_same("weight_gradients", A_prev=A_prev, delta=delta, dW=dW,
                                       db=db)
    require(A_prev.ndim == 2 and delta.ndim == 2, "weight_gradients: A_prev, delta 2-D")
    n, n_in = A_prev.shape
    n_out = delta.shape[1]
    check_shape("weight_gradients", "delta", delta, (n, n_out))
    check_shape("weight_gradients", "dW", dW, (n_in, n_out))
    check_shape("weight_gradients", "db", db, (n_out,))
    part = cuda.device_array((config.BIAS_SPLIT, n_out), np.float64)
    weight_gradients_rows(A_prev, delta, n, dW, db, part)

"""Cheap whole-array checks the training loop runs between chunks of minibatches."""
import math

from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def all_finite(a):
    """True when every entry of the contiguous array ``a`` is finite. Allocates nothing."""
    flat = a.reshape(-1)
    for k in range(flat.shape[0]):
        if not math.isfinite(flat[k]):
            return False
    return True

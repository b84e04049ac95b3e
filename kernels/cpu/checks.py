"""Cheap whole-array checks the training loop runs between chunks of minibatches."""
import math

from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def all_finite(a):
    """True when every entry of the contiguous array ``a`` is finite. Allocates nothing."""
    flat = a.reshape(-1)
    # no early exit: an integer OR over the whole array vectorises (9,610 float32: 0.49 us
    # against 2.69 for the loop that returns at the first bad value, measured in a compiled
    # loop), and the answer is almost always True
    bad = 0
    for k in range(flat.shape[0]):
        bad |= not math.isfinite(flat[k])
    return bad == 0

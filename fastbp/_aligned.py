"""Arrays on cache-line boundaries for the compiled kernels' inputs and workspaces."""
import numpy as np


def aligned_empty(shape, dtype):
    """``np.empty(shape, dtype)`` starting on a 64-byte boundary (a cache line, one AVX-512
    vector). NumPy's allocator gives 16 bytes; then every 64-byte vector load of a row whose
    width is a multiple of 16 floats straddles two cache lines. Whole fits with the engine's
    parameters, gradients, optimizer state and workspaces aligned ran 1.00-1.04x faster than
    with all of them 16 bytes past a line (mnist 1.02-1.04, digits 1.00-1.04; five runs of
    asv_benchmarks/ab_alignment.py; docs/performance.md)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.empty(n + 64 // dtype.itemsize, dtype)
    skip = (-raw.ctypes.data % 64) // dtype.itemsize
    return raw[skip:skip + n].reshape(shape)


def aligned_zeros(shape, dtype):
    """``np.zeros(shape, dtype)`` on a 64-byte boundary (see ``aligned_empty``)."""
    out = aligned_empty(shape, dtype)
    out[...] = 0
    return out


def driver_workspaces(sizes, rows, dtype):
    """The compiled drivers' workspaces for ``rows`` rows of a network with layer widths
    ``sizes`` (int64 array), as laid out in kernels/cpu/network.py: ``A_buf``, ``Z_buf``,
    ``D_buf`` (2, ...) and ``Y_buf`` (rows, outputs), each on a cache line."""
    return (aligned_empty(rows * int(sizes.sum()), dtype),
            aligned_empty(rows * int(sizes[1:].sum()), dtype),
            aligned_empty((2, rows * int(sizes[1:].max())), dtype),
            aligned_empty((rows, int(sizes[-1])), dtype))

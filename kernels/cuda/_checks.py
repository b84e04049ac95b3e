"""Argument checks for the public launch wrappers (the kernels themselves check nothing)."""
import numpy as np
from numba import cuda

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def require(cond, msg):
    if not cond:
        raise ValueError(msg)


def as_device(arr):
    """A numba device array for ``arr`` (zero-copy for ``__cuda_array_interface__`` objects:
    CuPy, PyTorch), or None when it is not in device memory."""
    if hasattr(arr, "copy_to_host") and hasattr(arr, "is_c_contiguous"):
        return arr  # a numba device array (or the simulator's stand-in)
    if hasattr(arr, "__cuda_array_interface__") and hasattr(cuda, "as_cuda_array"):
        return cuda.as_cuda_array(arr)
    return None


def device(name, arr):
    dev = as_device(arr)
    require(dev is not None, f"{name} must be a CUDA device array "
                             f"(cuda.to_device or __cuda_array_interface__); got {type(arr)}")
    return dev


def check_same(fn, **arrays):
    """Every array on the device, C-contiguous, one float dtype; 1-D arrays of one length
    when called with 1-D arrays. Returns the arrays as numba device arrays, in order."""
    out = []
    dtype = None
    for name, a in arrays.items():
        a = device(f"{fn}: {name}", a)
        require(a.dtype in DTYPES, f"{fn}: {name} must be float32 or float64; got {a.dtype}")
        require(dtype is None or a.dtype == dtype,
                f"{fn}: all arrays must share one dtype; {name} is {a.dtype}, not {dtype}")
        require(a.is_c_contiguous(), f"{fn}: {name} must be C-contiguous")
        dtype = a.dtype
        out.append(a)
    return out


def check_shape(fn, name, a, shape):
    require(tuple(a.shape) == tuple(shape),
            f"{fn}: {name} has shape {tuple(a.shape)}, expected {tuple(shape)}")

"""Input checking shared by every public entry point.

Each check raises ValueError/TypeError naming the argument, what was expected and what was
given, and converts accepted inputs (lists, integer arrays, Fortran-ordered or strided arrays)
once, to C-contiguous arrays of the network's dtype.
"""
import math
import numbers

import numpy as np

from . import _threading  # noqa: F401  (picks a thread-safe Numba layer before any parallel run)
from .kernels.cpu.checks import all_finite

#: Arrays of fewer elements are checked for NaN and Inf with NumPy, so a small network's
#: first fit compiles no check (0.4-0.6 s of a cold start, compile events): ``isfinite``
#: into a temporary of one byte per element (at most 1 MiB), then ``all``. That measured
#: 2.7 against 5.1 us for a 9,610-element float32 vector and 13.4 against 18.9 us for a
#: 1792 x 64 array, against the earlier maximum and minimum (two passes, no temporary;
#: seventeenth session), and a fit checks its inputs, parameters and optimizer state each
#: call. Larger arrays use the compiled one-pass scan, which pays for its compile once per
#: cache: 15-16 against 29-31 ms on a 60000 x 784 float32 array (Intel Xeon, 14th session).
FINITE_NUMPY_MAX = 1 << 20


def read_only(a):
    """A read-only view of ``a`` (no copy), for the compiled kernels' data arguments.

    Numba compiles a separate specialisation for a read-only array: a read-only memory map,
    or any array with ``flags.writeable`` False, of the network's dtype passes through the
    input checks uncopied, and without this it cost a whole second compile of the training
    driver (a cold one is most of a first epoch's time). The kernels only read these
    arguments, so every caller passes them read-only and one specialisation serves both."""
    view = a.view()
    view.flags.writeable = False
    return view


def finite(a):
    """Whether every entry of the float array ``a`` (C-contiguous) is finite."""
    if a.size < FINITE_NUMPY_MAX:
        return bool(np.isfinite(a).all())
    return all_finite(a)


def _describe(a):
    a = np.asarray(a) if not isinstance(a, np.ndarray) else a
    return f"array of shape {a.shape} and dtype {a.dtype}"


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}; got {value!r}")
    return value


def check_int(name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def check_float(name, value, minimum=None, maximum=None, min_inclusive=True, max_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if minimum is not None and (value < minimum or (value == minimum and not min_inclusive)):
        op = ">=" if min_inclusive else ">"
        raise ValueError(f"{name} must be {op} {minimum}; got {value}")
    if maximum is not None and (value > maximum or (value == maximum and not max_inclusive)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name} must be {op} {maximum}; got {value}")
    return value


def _numeric(name, a):
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as exc:  # ragged lists and the like
            raise ValueError(f"{name} must be a rectangular numeric array; {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers (bool, int or float); got {_describe(arr)}")
    return arr


def as_matrix(name, a, dtype, n_features=None):
    """A 2-D finite float array of ``dtype``, C-contiguous, non-empty."""
    arr = _numeric(name, a)
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got {_describe(arr)}"
                         f"{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty; got {_describe(arr)}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (the network's input size); "
                         f"got {arr.shape[1]}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
        out = np.ascontiguousarray(arr, dtype=dtype)
    _check_finite(name, arr, out, dtype)
    return out


def _check_finite(name, arr, out, dtype):
    if not finite(out):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or Inf")
        raise ValueError(f"{name} contains values too large for {np.dtype(dtype).name} "
                         f"(they overflow to Inf); scale the data")


def as_targets(name, y, loss, n_outputs, n_samples, dtype):
    """Targets as an (n, K) float array of ``dtype`` for the network's loss.

    cross_entropy: class labels (n,) in [0, K) or one-hot/probability rows (n, K).
    binary_cross_entropy: 0/1 (or [0, 1]) values, (n,) when K == 1 or (n, K).
    mse: floats, (n,) when K == 1 or (n, K).
    """
    arr = _numeric(name, y)
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D; got {_describe(arr)}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} must have one row per sample of X ({n_samples}); "
                         f"got {arr.shape[0]}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():  # integers are always finite
        raise ValueError(f"{name} contains NaN or Inf")
    if loss == "cross_entropy" and arr.ndim == 1:
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels for cross_entropy; got "
                             f"non-integer values such as {arr[arr != np.round(arr)][0].item()!r}")
        if arr.min() < 0 or arr.max() >= n_outputs:  # before any cast: no int64 overflow
            raise ValueError(f"{name} labels must lie in [0, {n_outputs}) for a network with "
                             f"{n_outputs} outputs; got min {arr.min().item()}, "
                             f"max {arr.max().item()}")
        # in [0, n_outputs) already (checked above), so the cast cannot overflow
        labels = arr.astype(np.intp, copy=False)
        # rows of the identity: half the time of zeros plus a fancy-indexed assignment
        # (1792 labels: 3.5 against 7.0 us), which a fit per epoch pays every call
        return np.eye(n_outputs, dtype=dtype).take(labels, axis=0)
    if arr.ndim == 1:
        if n_outputs != 1:
            raise ValueError(f"{name} must be 2-D (n_samples, {n_outputs}) for a network with "
                             f"{n_outputs} outputs; got {_describe(arr)}")
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_outputs:
        raise ValueError(f"{name} must have {n_outputs} columns (the network's outputs); "
                         f"got {arr.shape[1]}")
    if loss in ("cross_entropy", "binary_cross_entropy"):
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"{name} must lie in [0, 1] for {loss}; got values in "
                             f"[{arr.min().item()}, {arr.max().item()}]")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    _check_finite(name, arr, out, dtype)
    return out


def as_array(name, a, shape, dtype):
    """A finite float array of exactly ``shape`` (parameters: set_parameters and the like)."""
    if a is None:
        raise TypeError(f"{name} must be an array of shape {shape}; got None")
    arr = _numeric(name, a)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {arr.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    _check_finite(name, arr, out, dtype)
    return out

"""Threading facts: Numba's threading layer and the BLAS that np.dot uses inside njit code."""
import numpy as np


def threading_layer():
    """The Numba threading layer in use (runs a tiny parallel function to find out)."""
    import numba
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def _touch(n):
        s = 0
        for i in prange(n):
            s += i
        return s

    from ._threading import guard
    with guard():
        _touch(4)
    return numba.threading_layer()


def blas_info():
    """A short description of scipy's BLAS (the one Numba calls for np.dot)."""
    try:
        import scipy
        cfg = scipy.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} (via scipy)"
    except Exception as exc:  # show_config layouts differ across versions
        return f"unknown ({type(exc).__name__})"

"""Numba's threading layer, chosen deliberately when fastbp is imported.

Numba parallel regions are launched by the standalone ``parallel=True`` kernels
(``fastbp.kernels.sgd_update`` and ``adam_update``) and by the compiled training and inference
drivers where a net's products are large enough to split over the threads
(``threaded_flag`` below), and only where ``products_may_thread`` allows it: a thread-safe
layer, and not a forked child on a layer where that kills the child. Small nets run on the
calling thread. The drivers are compiled ``nogil=True``, so two Python threads can train two
networks at once, and a forked child can train, whatever the layer.

The layers Numba can use differ in what survives concurrent calls and ``fork``:

============  ==============================  ======================================
layer         two threads call parallel code  forked child calls parallel code
============  ==============================  ======================================
tbb           yes                             yes
omp (GNU)     yes                             no, if the parent launched a parallel
                                              region first (Numba terminates the child)
omp (other)   yes                             yes
workqueue     no: Numba aborts the process    yes
============  ==============================  ======================================

Numba's own default order (tbb, omp, workqueue) falls back to workqueue silently, where a
second thread calling a parallel kernel kills the interpreter. fastbp therefore picks the
first *thread-safe* layer that can actually be loaded (tbb, then omp) before any parallel
region runs; only when neither loads does it fall back to workqueue and then
``parallel_lock`` serialises fastbp's own parallel launches (hold it yourself around direct
calls to the parallel kernels from several threads). A layer chosen by the user
(``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER``) is always respected.

See docs/reliability.md and tests/test_concurrency.py.
"""
import importlib
import os
import threading
import warnings

import numpy as np
from numba import config

#: Serialises parallel launches when the layer is not thread-safe (re-entrant).
parallel_lock = threading.RLock()

#: The layer fastbp asked Numba for, or None when the user (or an earlier launch) decided.
CHOSEN = None


def _loadable(name):
    """Whether the threading layer ``name`` can be loaded, without launching any thread."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "tbb":
                from numba.np.ufunc.parallel import _check_tbb_version_compatible
                _check_tbb_version_compatible()
            module = "workqueue" if name == "workqueue" else name + "pool"
            importlib.import_module("numba.np.ufunc." + module)
        return True
    except Exception:  # ImportError, OSError from a missing shared library
        return False


def _choose():
    from numba.np.ufunc import parallel
    if "NUMBA_THREADING_LAYER" in os.environ or str(config.THREADING_LAYER).lower() != "default":
        return None  # the user's explicit choice wins
    if parallel._is_initialized:
        return None  # too late: some parallel code already ran
    for name in ("tbb", "omp", "workqueue"):
        if _loadable(name):
            config.THREADING_LAYER = name
            return name
    return None


def layer():
    """The layer in use once parallel code ran, else the one that will be used."""
    from numba.np.ufunc import parallel
    if parallel._is_initialized:
        return parallel.threading_layer()
    name = str(config.THREADING_LAYER).lower()
    return CHOSEN or name


def is_threadsafe(name=None):
    """Whether concurrent calls to parallel kernels from several threads are safe."""
    name = name or layer()
    return name in ("tbb", "omp", "threadsafe", "safe")


def is_forksafe(name=None):
    """Whether a forked child may launch parallel regions after its parent did."""
    name = name or layer()
    if name in ("tbb", "workqueue", "safe", "forksafe"):
        return True
    if name == "omp":
        try:
            from numba.np.ufunc import omppool
            return getattr(omppool, "openmp_vendor", "GNU") != "GNU"
        except Exception:
            return False
    return False


class _Guard:
    """Context manager: holds ``parallel_lock`` only when the layer is not thread-safe."""

    def __enter__(self):
        self._held = not is_threadsafe()
        if self._held:
            parallel_lock.acquire()
        return self

    def __exit__(self, *exc):
        if self._held:
            parallel_lock.release()
        return False


_FORKED = False


def _mark_forked():
    global _FORKED
    _FORKED = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


def products_may_thread():
    """Whether the training driver may spread large products over Numba's threads: more than
    one thread allowed, a thread-safe layer, and not a forked child on a layer where that
    kills the child (GNU OpenMP)."""
    from numba import get_num_threads
    if get_num_threads() < 2 or not is_threadsafe():
        return False
    return not _FORKED or is_forksafe()  # the cheap test first: a fit asks once per chunk


def threaded_flag(sizes, rows, dtype):
    """The compiled drivers' ``threaded`` argument for a net of layer widths ``sizes`` run on
    ``rows`` rows: where threads are allowed (``products_may_thread``) and the largest
    product reaches ``gemm.PARALLEL_MIN_MACS`` multiply-adds or streams its weights
    (``stream.streams``), True if some weight matrix is large enough to stream at a few rows
    and ``gemm.THREADED_NO_STREAM`` if none is (its specialisation holds no streamed
    products: 4.5 s less cold compile); else None (compiled without threaded code)."""
    from .kernels.cpu.gemm import PARALLEL_MIN_MACS, THREADED_NO_STREAM
    from .kernels.cpu.stream import STREAM_MAX_ROWS, STREAM_MIN_BYTES
    s = sizes.tolist() if isinstance(sizes, np.ndarray) else [int(v) for v in sizes]
    widest = max(a * b for a, b in zip(s, s[1:]))
    may_stream = widest * np.dtype(dtype).itemsize >= STREAM_MIN_BYTES
    # the cheap test first: small nets never thread; a large layer at a small batch does
    # (its products stream the weights, faster on every core: kernels/cpu/stream.py)
    if rows * widest < PARALLEL_MIN_MACS and not (rows <= STREAM_MAX_ROWS and may_stream):
        return None
    if not products_may_thread():
        return None
    return True if may_stream else THREADED_NO_STREAM


def guard():
    """``with guard(): parallel_kernel(...)`` is safe from any thread on any layer."""
    return _Guard()


CHOSEN = _choose()

"""Whether the CPU engine computes with denormal numbers flushed to zero (on by default).

See ``kernels/cpu/fpmode.py`` for why: on x86, arithmetic on denormals (float32 magnitudes
below 1.2e-38) is one to two orders of magnitude slower, and a network whose activations or
deltas underflow would train that much slower. JAX flushes them on the CPU too.
"""
import numba
import numpy as np
from numba import njit, prange

from .kernels.cpu.fpmode import FLUSH, fp_mode, set_thread_mode

_flush = True
_workers_started = False


def set_flush_denormals(enabled):
    """Whether fastbp's CPU training and inference flush denormal numbers to zero.

    On (the default): each compiled call of a ``Network`` on the CPU (fit, forward, predict,
    loss, gradients) runs with the x86 FTZ and DAZ modes set on every thread it uses, and
    restores the calling thread's mode when it returns. Results then differ from IEEE
    arithmetic only where a value falls below the normal range (about 1.2e-38 in float32,
    2.2e-308 in float64), where it becomes 0. Off: IEEE denormals, and their cost. The
    scikit-learn estimators (``fastbp.sklearn``), which reproduce scikit-learn's arithmetic,
    and the kernels called directly always use the caller's mode. No effect on other
    processors or on CUDA.

    Parameters
    ----------
    enabled : bool
        Flush (True) or keep IEEE denormals (False).

    Returns
    -------
    bool
        The previous setting.
    """
    global _flush
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool; got {enabled!r}")
    previous, _flush = _flush, enabled
    return previous


def flush_denormals():
    """Whether fastbp's CPU engine flushes denormal numbers (``set_flush_denormals``).

    Returns
    -------
    bool
        The current setting (True by default).
    """
    return _flush


@njit(cache=True, parallel=True)
def thread_modes(out):
    """Each task's thread's denormal mode (``fpmode.fp_mode``) into ``out``: with at least
    as many entries as threads, every one of Numba's threads runs some of them."""
    for t in prange(out.shape[0]):
        out[t] = fp_mode()


def start_workers():
    """Have Numba start all its worker threads now, from this thread in its own mode.

    A new thread inherits its creator's floating-point mode, and Numba starts its workers
    at the first parallel region: started inside a flushing call they would keep flushing
    for good, also under other code's parallel regions later. Called once per process before
    the first flushing call that may use the threads (which the caller has checked may be
    launched here, ``_threading.products_may_thread``)."""
    global _workers_started
    if _workers_started:
        return
    before = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # every worker there will be
    try:
        thread_modes(np.empty(4 * numba.config.NUMBA_NUM_THREADS, np.int64))
    finally:
        numba.set_num_threads(before)
    _workers_started = True


def call_flushing(fn, *args, threads=False):
    """``fn(*args)`` (a compiled function) with denormals flushed on this thread when the
    setting is on; the thread's own mode is restored afterwards, whatever happens. Pass
    ``threads=True`` where ``fn`` may run parallel regions (``start_workers``); their tasks
    take this thread's mode (``fpmode.py``)."""
    if not _flush:
        return fn(*args)
    if threads:
        start_workers()
    saved = set_thread_mode(FLUSH)
    try:
        return fn(*args)
    finally:
        set_thread_mode(saved)

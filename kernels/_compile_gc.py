"""Python's cyclic garbage collector paused while Numba compiles one of these kernels.

Numba's compiler builds and drops millions of small Python objects (IR nodes, types, typing
templates), and the cyclic collector scans them again and again as they pile up: a first
digits epoch with an empty cache took 12.8 s with the collector running and 10.9-11.1 s
with it off (docs/performance.md; asv's ``timeraw`` benchmarks run under ``timeit``, which
turns it off, and so measured the shorter time). ``install()`` registers a Numba event
listener: when a compilation of a kernel from this package starts and no other compilation
is under way, the collector is disabled, and it is enabled again when that compilation ends,
whether it succeeded or raised, and only if it was enabled before. Cache loads and compiled
calls are not affected, nor are compilations of other packages' functions. The garbage of
the compilation is collected by the collector's next run.
"""
import gc
import threading

from numba.core import event

_PACKAGE = __name__.rsplit(".", 1)[0]  # fastbp.kernels (installed name)
_lock = threading.Lock()
_depth = 0
_paused = False  # whether the outermost compilation under way disabled the collector


def _ours(ev):
    dispatcher = (ev.data or {}).get("dispatcher")
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
    return module == _PACKAGE or module.startswith(_PACKAGE + ".")


class _PauseCollector(event.Listener):
    def on_start(self, ev):
        global _depth, _paused
        with _lock:
            if _depth == 0:
                if not _ours(ev):
                    return  # another package's compilation: leave the collector alone
                _paused = gc.isenabled()
                if _paused:
                    gc.disable()
            _depth += 1

    def on_end(self, ev):
        global _depth, _paused
        with _lock:
            if _depth == 0:
                return  # the end of a compilation this listener did not count
            _depth -= 1
            if _depth == 0 and _paused:
                _paused = False
                gc.enable()


_listener = None


def install():
    """Register the listener once (idempotent)."""
    global _listener
    if _listener is None:
        _listener = _PauseCollector()
        event.register("numba:compile", _listener)

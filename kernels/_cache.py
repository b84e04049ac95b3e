"""Keep Numba's on-disk cache consistent across kernel edits.

Numba invalidates a cached function only when *its own* source file changes. A cached driver
such as ``train_batches`` inlines kernels from other files, so editing ``forward.py`` would
leave a stale (even crashing) driver in the cache. At import we hash every kernel source; when
the hash differs from the one stamped in ``__pycache__`` we drop this package's cache files.
Reading ~25 small files costs well under a millisecond.
"""
import glob
import hashlib
import os

_ROOT = os.path.dirname(os.path.abspath(__file__))
_STAMP = os.path.join(_ROOT, "__pycache__", "kernels-source.sha256")


def source_digest():
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(_ROOT, "**", "*.py"), recursive=True)):
        h.update(os.path.relpath(path, _ROOT).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def drop_stale_cache():
    """Delete this package's Numba cache files if any kernel source changed since last time."""
    digest = source_digest()
    try:
        with open(_STAMP) as f:
            if f.read() == digest:
                return False
    except OSError:
        pass
    for folder in glob.glob(os.path.join(_ROOT, "**", "__pycache__"), recursive=True):
        for cached in glob.glob(os.path.join(folder, "*.nb[ic]")):
            try:
                os.remove(cached)
            except OSError:
                pass
    try:  # a read-only install cannot stamp; Numba then caches elsewhere by itself
        os.makedirs(os.path.dirname(_STAMP), exist_ok=True)
        with open(_STAMP, "w") as f:
            f.write(digest)
    except OSError:
        pass
    return True


def keep_parallel_reload_hooks():
    """Make cache entries that link threaded code load Numba's threading layer first.

    A cached kernel whose calls reach a ``parallel=True`` function carries that code, which
    needs the threading layer's symbols (``allocate_sched``, ...). Numba records a hook that
    loads the layer in the entry of a function compiled together with its parallel callee,
    but a library read back from the cache forgets its hooks, so a function compiled
    against it (``matmul(A, B, out, True)`` inside a user's ``@njit`` function, say) wrote an
    entry without one, and loading that entry in a fresh process killed the interpreter
    ("LLVM ERROR: Symbol not found: allocate_sched", or a segmentation fault):
    numba/numba#9938. This hands each cache-loaded library its entry's hooks back, as
    freshly compiled ones have them. It only adds hooks Numba itself recorded; where
    Numba's internals differ it does nothing. Returns whether it is in place.
    """
    from numba.core.compiler import CompileResult
    rebuild = CompileResult.__dict__.get("_rebuild")
    if not isinstance(rebuild, classmethod) or getattr(rebuild.__func__, "_fastbp", False):
        return getattr(getattr(rebuild, "__func__", None), "_fastbp", False)
    original = rebuild.__func__

    def _rebuild(cls, *args, **kwargs):
        result = original(cls, *args, **kwargs)
        hooks = getattr(result, "reload_init", None)
        library_hooks = getattr(getattr(result, "library", None), "_reload_init", None)
        if hooks and isinstance(library_hooks, set):
            library_hooks.update(hooks)
        return result
    _rebuild._fastbp = True
    CompileResult._rebuild = classmethod(_rebuild)
    return True

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

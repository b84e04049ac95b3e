"""The cyclic collector is off exactly while Numba compiles fastbp's kernels
(kernels/_compile_gc.py), and back to its previous state afterwards, errors included."""
import os
import subprocess
import sys

SCRIPT = r"""
import gc, sys
import numpy as np
from numba import njit
from numba.core import event
import fastbp.kernels as K

seen = []  # (function name, collector enabled) at each compilation's start


class Record(event.Listener):
    def on_start(self, ev):
        seen.append((ev.data["dispatcher"].py_func.__name__, gc.isenabled()))

    def on_end(self, ev):
        pass


event.register("numba:compile", Record())  # after fastbp's listener: sees its effect

p, g = np.ones(5, np.float32), np.ones(5, np.float32)
K.sgd_range(p, g, g, 0.1, 0.0, False, 0.0, 0, 5)  # compiles (empty cache)
assert p[0] == np.float32(0.9), p
assert ("sgd_range", False) in seen, seen
assert gc.isenabled(), "collector not enabled again after the compilation"


@njit
def users_own(x):
    return x + 1


seen.clear()
users_own(1)
assert seen == [("users_own", True)], seen  # other code's compilations: untouched

try:  # a compilation that fails (typing error) still gives the collector back
    K.sgd_range("a", g, g, 0.1, 0.0, False, 0.0, 0, 5)
except Exception:  # Numba's typing error (its wording is Numba's)
    pass
else:
    raise AssertionError("no error for a string argument")
assert gc.isenabled()

gc.disable()  # a caller who turned it off keeps it off
K.sgd_range(p.astype(np.float64), g.astype(np.float64), g.astype(np.float64), 0.1, 0.0,
            False, 0.0, 0, 5)
assert not gc.isenabled()
print("ok")
"""


def test_collector_paused_only_during_fastbp_compilations(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("ok")

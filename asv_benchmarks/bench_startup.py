"""Time to first epoch in a fresh interpreter: ``import fastbp`` plus one digits epoch
(64-128-10, batch 32, 1792 samples), with the compile cache warm and cold.

asv times the returned code in a new Python process. Warm: the kernels' on-disk cache (the
package's ``__pycache__``) is filled in ``setup`` first. Cold: ``NUMBA_CACHE_DIR`` points at a
fresh empty folder before Numba is imported, so every kernel the epoch needs is compiled.
Targets (issue 3): warm < 1 s, cold < 10 s.
"""
import subprocess
import sys

EPOCH = """
import numpy as np
import fastbp
rng = np.random.default_rng(0)
X = rng.standard_normal((1792, 64)).astype(np.float32)
y = rng.integers(0, 10, 1792)
net = fastbp.Network([64, 128, 10], activation="relu", output="softmax",
                     loss="cross_entropy", dtype="float32", seed=0)
net.fit(X, y, epochs=1, batch_size=32, optimizer=fastbp.SGD(lr=0.01, momentum=0.9))
"""

COLD = """
import os, tempfile
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastbp-cold-")
"""


def _warm_cache():
    subprocess.run([sys.executable, "-c", EPOCH], check=True)


class FirstEpoch:
    timeout = 240
    # each sample is a whole fresh process; a few are enough
    repeat = (1, 5, 60.0)
    number = 1

    def setup(self):
        _warm_cache()

    def timeraw_import(self):
        return "import fastbp"

    def timeraw_import_and_first_epoch_warm_cache(self):
        return EPOCH

    def timeraw_import_and_first_epoch_cold_cache(self):
        return COLD + EPOCH

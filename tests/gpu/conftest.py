"""GPU tests: run on a real GPU when there is one, else under numba's CUDA simulator (the
top-level tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1 then; this repeats it so that
``pytest tests/gpu`` alone works too). Every test shrinks the launch configuration so that
tiny inputs span several blocks and every grid-stride loop iterates."""
import os

if "NUMBA_ENABLE_CUDASIM" not in os.environ and not os.path.exists("/dev/nvidia0"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pytest  # noqa: E402

from fastbp.kernels.cuda import config  # noqa: E402

SMALL = dict(THREADS_PER_BLOCK=8, MAX_BLOCKS=2, TILE=4, MICRO=2, BIAS_SPLIT=3,
             FUSED_THREADS=16)


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    for name, value in SMALL.items():
        monkeypatch.setattr(config, name, value)
    yield config

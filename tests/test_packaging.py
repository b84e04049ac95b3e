"""A regular (non-editable) install gives ``fastbp`` and ``fastbp.kernels`` with the data.

Builds a wheel of this checkout, installs it into a temporary folder with ``--target``, and
imports it from there in a fresh interpreter (that folder comes first on the path, so the
editable install of the test environment cannot stand in for it).
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = """
import os, sys, numpy as np
import fastbp, fastbp.kernels
from fastbp.data import load_digits
site = sys.argv[1]
for mod in (fastbp, fastbp.kernels):
    assert os.path.abspath(mod.__file__).startswith(site), mod.__file__
X, y = load_digits()
assert X.shape == (1797, 64)
net = fastbp.Network([64, 8, 10], seed=0)
net.fit(X[:64] / 16, y[:64], epochs=1)
print("ok", fastbp.kernels.__file__)
"""


def test_wheel_install_imports_fastbp_and_kernels(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    ROOT], check=True, timeout=600)
    wheel = next(wheels.glob("fastbp-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, timeout=600)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", CHECK, str(site)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok")


def test_kernels_refuse_a_second_import_name():
    """From the source checkout, ``kernels/`` is also importable as plain ``kernels``; the
    same files under two module names would share (and break) Numba's on-disk cache, so that
    import fails with a message naming the right one, and fastbp.kernels still works."""
    code = ("import fastbp.kernels\n"
            "try:\n    import kernels\nexcept ImportError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "refused: this is fastbp's kernel package: import it as fastbp.kernels" in out.stdout


THREADED_PRODUCT = """
import sys, numpy as np
from numba import njit
from fastbp.kernels.cpu.gemm import matmul
rng = np.random.default_rng(0)
A = rng.standard_normal((64, 128)).astype(np.float32)  # 2**20 multiply-adds: threaded path
B = rng.standard_normal((128, 128)).astype(np.float32)
out = np.empty((64, 128), np.float32)
if sys.argv[1] == "direct":
    matmul(A, B, out, True)
else:
    @njit(cache=True)
    def users_kernel(A, B, out):
        matmul(A, B, out, True)
    users_kernel(A, B, out)
print("ok", float(np.abs(out - A.astype(np.float64) @ B).max()))
"""


def test_cached_threaded_kernels_load_in_a_fresh_process(tmp_path):
    """numba/numba#9938: an entry compiled while its parallel callee came from the cache
    lacked the hook that loads the threading layer, and the next process loading it died
    (LLVM ERROR: Symbol not found: allocate_sched). Here: the threaded product is cached by
    a direct call, a user's cached kernel is compiled against that cached product, then
    loaded from the cache in a third process (kernels/_cache.py)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    script = tmp_path / "threaded_product.py"
    script.write_text(THREADED_PRODUCT)
    for mode in ("direct", "user", "user"):
        out = subprocess.run([sys.executable, str(script), mode], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{mode}: exit {out.returncode}\n{out.stdout}{out.stderr}"
        word, err = out.stdout.split()
        assert word == "ok" and float(err) < 1e-3, out.stdout

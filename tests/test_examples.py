"""Each script in examples/ runs, quickly (small epoch counts), and prints sane results."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytest.importorskip("sklearn")  # the examples load scikit-learn's datasets


def run(script, *args, timeout=240):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    # tests/conftest.py turns on numba's CUDA simulator for the GPU tests; the examples run
    # as a user runs them: on a real GPU or not at all.
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                         text=True, timeout=timeout, env=env, cwd=EXAMPLES.parent)
    assert out.returncode == 0, f"{script} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def number(pattern, text):
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in output:\n{text}"
    return float(m.group(1).replace(",", ""))


def test_every_example_is_tested():
    tested = {"digits_classification.py", "regression.py", "sklearn_pipeline.py",
              "custom_training_step.py", "gpu_training.py", "compare_sklearn.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_digits_classification_with_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    out = run("digits_classification.py", "--epochs", "8", "--plot", str(png))
    assert number(r"test accuracy ([\d.]+)", out) > 0.85
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regression():
    out = run("regression.py", "--epochs", "15")
    assert number(r"Network: .* test R\^2 ([-\d.]+)", out) > 0.8
    assert number(r"MLPRegressor \(2 outputs\): .* test R\^2 ([-\d.]+)", out) > 0.5


def test_sklearn_pipeline():
    out = run("sklearn_pipeline.py", "--max-iter", "8")
    assert "best parameters: {" in out
    assert number(r"test accuracy ([\d.]+)", out) > 0.85


def test_custom_training_step():
    out = run("custom_training_step.py", "--epochs", "3")
    losses = [float(x) for x in re.findall(r"loss ([\d.]+)", out)]
    assert len(losses) >= 2 and losses[-1] < losses[0]  # the hand-built step learns
    norms = [float(x) for x in re.findall(r"largest gradient norm ([\d.]+)", out)]
    assert norms and all(n > 0 for n in norms)
    assert number(r"training accuracy ([\d.]+)", out) > 0.9


def test_gpu_example_runs_or_explains():
    out = run("gpu_training.py", "--epochs", "2")
    if "GPU example skipped:" in out:
        assert "device='cpu'" in out or "CUDA" in out
    else:  # a usable GPU: it trained and the CPU copy agrees
        assert number(r"training accuracy ([\d.]+)", out) > 0.5
        assert number(r"agrees with the GPU predictions on ([\d.]+)%", out) > 99


def test_compare_sklearn_quick():
    out = run("compare_sklearn.py", "--quick", "--repeats", "1", "--max-iter", "3")
    rows = [l for l in out.splitlines() if re.match(r"\s+\(\d", l)]
    assert len(rows) == 1 and re.search(r"\d+\.\d+x", rows[0])

"""Smoke test of the asv benchmarks and compare.py: every CPU benchmark's setup and body run
once on the smallest workload (digits shapes), in float32, so the suites never rot. No timing
is checked. One dtype is enough here: a benchmark's Python is the same for both, and each
float64 case compiled its own kernel specialisations (about 40 s of the suite's cold run;
the kernels' float64 results are tested in the other files)."""
import importlib
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ["bench_kernels", "bench_training", "bench_startup"]
PREFIXES = ("time_", "peakmem_", "track_", "mem_")

sys.path.insert(0, ROOT)


def _cases():
    for modname in MODULES:
        mod = importlib.import_module(f"asv_benchmarks.{modname}")
        for cname, cls in sorted(vars(mod).items()):
            if not isinstance(cls, type) or cls.__module__ != mod.__name__:
                continue
            methods = [m for m in dir(cls) if m.startswith(PREFIXES + ("timeraw_",))]
            if not methods:
                continue
            params = getattr(cls, "params", [])
            if params and not isinstance(params[0], (list, tuple)):
                params = [params]
            # the smallest workload only; float32 only
            grids = [["digits"] if "digits" in p else ["float32"] if "float32" in p
                     else list(p) for p in params]
            # a class's cases share their kernels' specialisations: one worker compiles them
            group = pytest.mark.xdist_group(f"bench_{cname}")
            for combo in itertools.product(*grids) if grids else [()]:
                yield pytest.param(cls, combo, methods, id=f"{modname}.{cname}{list(combo)}",
                                   marks=group)


@pytest.mark.parametrize("cls, combo, methods", list(_cases()))
def test_benchmark_runs_once(cls, combo, methods):
    bench = cls()
    if hasattr(bench, "ROUNDS"):
        bench.ROUNDS = {k: 1 for k in bench.ROUNDS}  # track_: one round is enough here
    if any(m.startswith("timeraw_") for m in methods):
        # run the warm-cache code once in a fresh interpreter (the cold one compiles: too slow)
        for m in methods:
            compile(getattr(bench, m)(), m, "exec")
        code = bench.timeraw_import_and_first_epoch_warm_cache()
        subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
        return
    try:
        bench.setup(*combo)
    except NotImplementedError:
        pytest.skip("benchmark not available here")
    try:
        for m in methods:
            out = getattr(bench, m)(*combo)
            if m.startswith("track_"):
                assert out >= 0
    finally:
        if hasattr(bench, "teardown"):  # asv calls it too (Denormals restores a setting)
            bench.teardown(*combo)


def test_compare_script_runs(tmp_path):
    from asv_benchmarks import compare
    md, png = tmp_path / "t.md", tmp_path / "t.png"
    argv = ["-w", "digits", "-f", "fastbp,fastbp-fit1,numpy", "--rounds", "1", "--markdown",
            str(md)]
    try:
        import matplotlib  # noqa: F401
        argv += ["--png", str(png)]
    except ImportError:
        png = None
    results = compare.main(argv)
    assert set(results[0]["sps"]) == {"fastbp", "fastbp-fit1", "numpy"}
    assert results[0]["floor"] > 0
    assert "| digits | fastbp |" in md.read_text()
    if png is not None:
        assert png.stat().st_size > 0


def test_compare_fastbp_epochs_train_as_one_call_per_epoch():
    """The ``fastbp`` row times ``epochs(k)``, one ``fit(epochs=k)`` call; ``fastbp-fit1``
    calls ``fit(epochs=1)`` k times. Both train the same k epochs: the same parameters, bit
    for bit (the optimizer's momentum carries over between calls), and both match the NumPy
    peer's k epochs (float64)."""
    from asv_benchmarks import compare
    sizes, k = [8, 16, 3], 3
    X, y = compare.make_data(sizes, 32, "float64")
    one_call = compare.FastbpTrainer(sizes, 4, X, y, "float64")
    per_epoch = compare.FastbpFitPerEpochTrainer(sizes, 4, X, y, "float64")
    npy = compare.NumpyTrainer(sizes, 4, X, y, "float64")
    one_call.epochs(k)
    per_epoch.epochs(k)
    npy.epochs(k)
    assert one_call.net.epochs_done == k and per_epoch.net.epochs_done == 1
    for a, b, want in zip(one_call.net.weights + one_call.net.biases,
                          per_epoch.net.weights + per_epoch.net.biases, npy.Ws + npy.bs):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, want, rtol=1e-9, atol=1e-12)


def test_compare_script_learning_rate_option():
    """``--lr`` reaches every trainer (a batch-1 custom net, as the online-learning rows of
    docs/performance.md were measured)."""
    from asv_benchmarks import compare
    default = compare.LR
    try:
        results = compare.main(["--sizes", "64,128,10", "--batch", "1", "--samples", "64",
                                "--lr", "0.001", "-f", "fastbp,numpy", "--rounds", "1"])
        assert compare.LR == 0.001
    finally:
        compare.LR = default
    assert set(results[0]["sps"]) == {"fastbp", "numpy"}


def test_compare_script_input_scale_option():
    """``--input-scale`` scales every framework's inputs (1e-39: denormal float32 inputs)."""
    from asv_benchmarks import compare
    try:
        results = compare.main(["--sizes", "64,128,10", "--samples", "64",
                                "--input-scale", "1e-39", "-f", "fastbp,numpy", "--rounds", "1"])
        assert compare.INPUT_SCALE == 1e-39
    finally:
        compare.INPUT_SCALE = 1.0
    assert set(results[0]["sps"]) == {"fastbp", "numpy"}


@pytest.mark.xdist_group("compare_activations")  # softplus and gelu share one driver
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "elu", "softplus", "gelu"])
def test_compare_script_activation_option(act):
    """``--activation`` reaches every trainer: after one epoch on the same data and batch
    order, fastbp's parameters and the NumPy peer's agree (float64), which they would not if
    either trained another activation."""
    from asv_benchmarks import compare
    try:
        compare.main(["--sizes", "8,16,3", "--batch", "4", "--samples", "32", "--dtype",
                      "float64", "--activation", act, "-f", "fastbp,numpy", "--rounds", "1"])
        assert compare.ACT == act
        X, y = compare.make_data([8, 16, 3], 32, "float64")
        fb = compare.FastbpTrainer([8, 16, 3], 4, X, y, "float64")
        npy = compare.NumpyTrainer([8, 16, 3], 4, X, y, "float64")
        fb.epoch()
        npy.epoch()
    finally:
        compare.ACT = "relu"
    for got, want in zip(fb.net.weights + fb.net.biases, npy.Ws + npy.bs):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_asv_check_finds_no_problems():
    """asv itself discovers and validates the suites (imports, parameters, names)."""
    out = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout


def test_gpu_benchmarks_skip_without_a_gpu():
    """Without a real GPU (this suite runs the CUDA simulator then) every GPU benchmark's
    setup raises NotImplementedError, which asv reports as skipped rather than failed: each
    class's ``setup`` for every parameter combination, and each free function's ``setup``
    attribute (asv runs it before the body; ``track_fp32_peak_tflops`` once raised from its
    body, and ``asv run --quick`` counted it as failed)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("a real GPU is present: the GPU benchmarks run instead of skipping")
    mod = importlib.import_module("asv_benchmarks.benchmarks_gpu")
    checked = 0
    for name, obj in sorted(vars(mod).items()):
        if isinstance(obj, type) and obj.__module__ == mod.__name__:
            if not any(m.startswith(PREFIXES) for m in dir(obj)):
                continue
            params = getattr(obj, "params", [])
            for combo in itertools.product(*params):
                with pytest.raises(NotImplementedError):
                    obj().setup(*combo)
                checked += 1
        elif callable(obj) and name.startswith(PREFIXES):
            assert callable(getattr(obj, "setup", None)), f"{name} has no setup to skip it"
            with pytest.raises(NotImplementedError):
                obj.setup()
            checked += 1
    assert checked >= 5  # Epoch's 4 combinations and the free function


def test_thread_scaling_script_runs_and_restores_threading():
    """thread_scaling.py times one round per thread count on a net large enough to thread,
    reports a tiny one as such, and leaves Numba's thread count and fastbp's threading
    decision as they were."""
    import numba

    from asv_benchmarks import thread_scaling
    from fastbp import _engine_cpu, _threading
    before = (numba.get_num_threads(), _threading.products_may_thread,
              _engine_cpu.products_may_thread)
    counts = (1, 2) if numba.config.NUMBA_NUM_THREADS >= 2 else (1,)
    lines = []
    rates = thread_scaling.measure("256,256,10:128:512", counts, rounds=1, out=lines.append)
    assert set(rates) == set(counts) and all(r > 0 for r in rates.values())
    assert all(f"{t} thread(s)" in lines[0] for t in counts)
    assert thread_scaling.measure("8,4,2:4:16", counts, rounds=1, out=lines.append) == {}
    assert "too small to thread" in lines[1]
    after = (numba.get_num_threads(), _threading.products_may_thread,
             _engine_cpu.products_may_thread)
    assert after == before


def test_compare_script_floor_uses_the_runs_dtype(monkeypatch):
    """A float64 run's floor is set by DGEMM, timed in float64 (until the thirteenth session
    compare.py timed SGEMM whatever the dtype)."""
    from asv_benchmarks import compare
    timed = []
    real = compare.sgemm_rate

    def recording(*args, **kwargs):
        timed.append(np.dtype(kwargs.get("dtype", "float32")))
        return real(*args, **kwargs)
    monkeypatch.setattr(compare, "sgemm_rate", recording)
    # NumPy's trainer only: the floor does not depend on the frameworks, and a float64 fastbp
    # fit would add a cold compile to the suite
    results = compare.main(["-w", "digits", "-f", "numpy", "--rounds", "1",
                            "--dtype", "float64"])
    assert timed and all(t == np.float64 for t in timed)
    assert results[0]["gemm"] == "DGEMM"
    flops = compare.flops_per_sample(results[0]["sizes"])
    assert results[0]["floor"] == pytest.approx(results[0]["gemm_gflops"] * 1e9 / flops)


def test_product_peers_script_checks_and_times_every_product():
    """product_peers.py checks each framework's product against float64 before timing it,
    reports every product of the step (forward, delta for the hidden layers above the first,
    weight gradient, fused step), and leaves Numba's thread count as it was."""
    import numba

    from asv_benchmarks import product_peers
    before = numba.get_num_threads()
    lines = []
    rates = product_peers.measure([24, 40, 8], 16, threads=(1,), rounds=1,
                                  frameworks=("fastbp", "numpy"), out=lines.append, pause=0,
                                  warm=0)
    assert numba.get_num_threads() == before
    labels = [label for (_, label) in rates]
    # layer 1: A @ W, A.T @ D, step; layer 2: the same and its delta D @ W.T
    assert len(labels) == 7 and sum("D @ W.T" in l for l in labels) == 1
    assert all(set(r) == {"fastbp", "numpy"} and all(0 < v < np.inf for v in r.values())
               for r in rates.values())
    assert len(lines) == 2 + len(rates)


def test_product_peers_script_refuses_a_wrong_product(monkeypatch):
    """A framework whose result is off is reported, not timed."""
    from asv_benchmarks import product_peers
    from fastbp.kernels.cpu import gemm
    real = gemm.matmul

    def off_by_one(A, B, out, threaded=None):
        real(A, B, out, threaded)
        out[0, 0] += 1.0
    monkeypatch.setattr(gemm, "matmul", off_by_one)
    with pytest.raises(AssertionError, match="fastbp: layer 1 A @ W"):
        product_peers.measure([24, 40, 8], 16, threads=(1,), rounds=1,
                              frameworks=("fastbp",), out=lambda s: None)


def test_step_pieces_script_times_every_kernel_of_a_step():
    """step_pieces.py times each product of a step (checked against float64 first), each
    kernel the driver calls and all of them in one loop, on one thread, for a net with two
    hidden layers: 3 forward products, 3 weight gradients, 2 deltas."""
    from asv_benchmarks import step_pieces
    lines = []
    res = step_pieces.measure([12, 20, 16, 4], 8, calls=3, rounds=1, out=lines.append)
    products = [k for k in res if "@" in k]
    assert len(products) == 8 and sum(".T" in k and k.startswith("D") for k in products) == 2
    kernels = [k for k in res if k.startswith(("forward", "loss", "output", "weight",
                                                "hidden", "update"))]
    assert len(kernels) == 3 + 1 + 1 + 3 + 2 + 1
    assert all(0 < res[k] < 1 for k in products + kernels + ["products", "kernels", "step"])
    assert res["products"] == pytest.approx(sum(res[k] for k in products))
    assert res["tile GFLOP/s"] > 0
    assert len(lines) == 1 + 1 + 8 + 1 + 1 + len(kernels) + 3 + 1


def test_step_pieces_script_refuses_bad_arguments():
    from asv_benchmarks import step_pieces
    with pytest.raises(SystemExit):
        step_pieces.main(["--sizes", "64"])
    with pytest.raises(SystemExit):
        step_pieces.main(["--batch", "0"])

"""Concurrency: two Python threads, forked children, and Numba's threading layer.

The parallel-kernel checks run in a subprocess: a threading layer that is not thread-safe
aborts the whole interpreter (Numba's workqueue does), which must show up as a failed test
rather than a dead test session.
"""
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastbp
from fastbp import _threading


def _data(seed, n=400, d=12, k=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def _train(seed, dtype="float32", epochs=4):
    X, y = _data(seed)
    net = fastbp.Network([12, 64, 32, 3], activation="tanh", dtype=dtype, seed=seed)
    net.fit(X, y, epochs=epochs, batch_size=16, optimizer=fastbp.Adam(lr=0.01))
    return net.get_flat_parameters()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_threads_train_two_networks_like_alone(dtype):
    alone = [_train(s, dtype) for s in (1, 2)]
    for _ in range(3):  # a few rounds: interleavings differ
        results, errors = {}, []

        def run(seed):
            try:
                results[seed] = _train(seed, dtype)
            except BaseException as exc:  # surfaces in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        np.testing.assert_array_equal(results[1], alone[0])
        np.testing.assert_array_equal(results[2], alone[1])


def test_two_threads_share_one_network_safely():
    """Predictions from one thread while another trains the same network: the lock keeps
    fit atomic per call, predictions stay finite and the final weights match a lone run."""
    X, y = _data(3)
    net = fastbp.Network([12, 32, 3], seed=3)
    ref = fastbp.Network([12, 32, 3], seed=3)
    ref.fit(X, y, epochs=5, batch_size=8, optimizer=fastbp.SGD(lr=0.05, momentum=0.9))
    stop, outs, errors = threading.Event(), [], []

    def reader():
        try:
            while not stop.is_set():
                outs.append(net.predict_proba(X[:50]))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        net.fit(X, y, epochs=5, batch_size=8, optimizer=fastbp.SGD(lr=0.05, momentum=0.9))
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors
    assert outs and all(np.isfinite(o).all() for o in outs)
    np.testing.assert_array_equal(net.get_flat_parameters(), ref.get_flat_parameters())


def _child_train(queue):
    try:
        queue.put(("ok", _train(7)))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put(("error", repr(exc)))


def test_forked_child_can_train():
    # The parent has used every compiled path first (training, and a parallel kernel), which
    # is what breaks fork-unsafe runtimes.
    want = _train(7)
    p = np.ones(70000)
    fastbp.kernels.sgd_update(p, p.copy(), np.zeros_like(p), 0.1, 0.9, False, 0.0)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_train, args=(queue,))
    child.start()
    status, got = queue.get(timeout=120)
    child.join(60)
    assert child.exitcode == 0
    assert status == "ok", got
    np.testing.assert_array_equal(got, want)


def _train_threaded_products(seed=3):
    """A float32 net whose products reach gemm.PARALLEL_MIN_MACS, so the driver spreads them
    over Numba's threads where that is allowed."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((256, 64)), rng.integers(0, 10, 256)
    net = fastbp.Network([64, 256, 128, 10], activation="relu", dtype="float32", seed=seed)
    net.fit(X, y, epochs=2, batch_size=64, optimizer=fastbp.SGD(lr=0.05, momentum=0.9))
    return net.get_flat_parameters()


def _child_train_threaded(queue):
    try:
        queue.put(("ok", _train_threaded_products(), _threading.products_may_thread()))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put(("error", repr(exc), None))


def test_forked_child_trains_after_parent_threaded_products():
    """The parent launched parallel products; the child (fork) trains the same net. Under GNU
    OpenMP the child must keep its products on one thread (a parallel launch there would kill
    it); the result is bit-identical either way (each output element has one owner)."""
    from fastbp.kernels.cpu.gemm import PARALLEL_MIN_MACS
    assert 64 * 64 * 256 >= PARALLEL_MIN_MACS
    want = _train_threaded_products()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_train_threaded, args=(queue,))
    child.start()
    status, got, child_may_thread = queue.get(timeout=120)
    child.join(60)
    assert child.exitcode == 0
    assert status == "ok", got
    np.testing.assert_array_equal(got, want)
    if not _threading.is_forksafe():
        assert child_may_thread is False


def test_threaded_products_two_threads_like_alone():
    want = _train_threaded_products(4), _train_threaded_products(5)
    got = {}
    ts = [threading.Thread(target=lambda s=s: got.__setitem__(s, _train_threaded_products(s)))
          for s in (4, 5)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    np.testing.assert_array_equal(got[4], want[0])
    np.testing.assert_array_equal(got[5], want[1])


def _run_script(code, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=full_env)


_PARALLEL_TWO_THREADS = """
    import threading, numpy as np, numba
    import fastbp
    from fastbp import _threading
    from fastbp.kernels import adam_update, sgd_update
    n = 5 * 65536 + 17  # several parallel chunks

    def sgd_job(seed, out):
        rng = np.random.default_rng(seed)
        p, g = rng.standard_normal(n), rng.standard_normal(n)
        v = np.zeros(n)
        for _ in range(60):
            with _threading.guard():
                sgd_update(p, g, v, 0.01, 0.9, False, 0.0)
        out[seed] = p

    def adam_job(seed, out):
        rng = np.random.default_rng(seed)
        p, g = rng.standard_normal(n), rng.standard_normal(n)
        m, v = np.zeros(n), np.zeros(n)
        for t in range(1, 61):
            with _threading.guard():
                adam_update(p, g, m, v, t, 0.01, 0.9, 0.999, 1e-8, 0.0, False)
        out[seed] = p

    alone = {}
    sgd_job(0, alone); adam_job(1, alone)
    together = {}
    ts = [threading.Thread(target=sgd_job, args=(0, together)),
          threading.Thread(target=adam_job, args=(1, together))]
    [t.start() for t in ts]; [t.join() for t in ts]
    assert np.array_equal(alone[0], together[0]) and np.array_equal(alone[1], together[1])
    print("LAYER", numba.threading_layer(), _threading.is_threadsafe())
"""


def test_parallel_kernels_from_two_threads_default_layer():
    """fastbp picks a thread-safe layer when one loads, so no guard is even needed."""
    code = _PARALLEL_TWO_THREADS.replace("with _threading.guard():", "if True:")
    r = _run_script(code)
    assert r.returncode == 0, r.stderr[-2000:]
    layer = r.stdout.split("LAYER")[1].split()
    if _threading._loadable("omp") or _threading._loadable("tbb"):
        assert layer == [_threading.CHOSEN, "True"]
        assert _threading.CHOSEN in ("tbb", "omp")


def test_parallel_kernels_from_two_threads_workqueue_guarded():
    """With the unsafe workqueue layer (the user's choice), guard() serialises the calls."""
    r = _run_script(_PARALLEL_TWO_THREADS, env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "LAYER workqueue False" in r.stdout


def test_workqueue_unguarded_is_the_hazard_we_avoid():
    """The failure mode the layer choice prevents: Numba aborts the process. Ten times the
    launches of the guarded runs: the two threads must overlap at least once even when other
    processes (a parallel test run) share the cores; the abort ends the script at the first
    overlap."""
    code = (_PARALLEL_TWO_THREADS.replace("with _threading.guard():", "if True:")
            .replace("range(60)", "range(600)").replace("range(1, 61)", "range(1, 601)"))
    assert "range(600)" in code and "range(1, 601)" in code
    r = _run_script(code, env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert r.returncode != 0
    assert "Concurrent access has been detected" in r.stderr


def test_forked_child_can_call_parallel_kernels_on_forksafe_layer():
    """Under a fork-safe layer (workqueue here) a forked child may run parallel kernels after
    its parent did; GNU OpenMP forbids exactly this, see docs/reliability.md."""
    code = """
        import multiprocessing as mp, numpy as np
        import fastbp
        from fastbp import _threading
        from fastbp.kernels import sgd_update
        n = 3 * 65536

        def job(q=None):
            p = np.ones(n); sgd_update(p, np.ones(n), np.zeros(n), 0.5, 0.0, False, 0.0)
            X = np.random.default_rng(0).standard_normal((100, 4)); y = (X[:, 0] > 0) * 1
            net = fastbp.Network([4, 8, 2], seed=0); net.fit(X, y, epochs=2)
            r = (float(p.sum()), net.get_flat_parameters())
            if q is not None:
                q.put(r)
            return r

        a = job()
        assert _threading.is_forksafe()
        ctx = mp.get_context("fork"); q = ctx.Queue()
        c = ctx.Process(target=job, args=(q,)); c.start()
        b = q.get(timeout=120); c.join(60)
        assert c.exitcode == 0 and a[0] == b[0] and np.array_equal(a[1], b[1])
        print("FORK OK")
    """
    r = _run_script(code, env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "FORK OK" in r.stdout


def test_layer_safety_table():
    assert _threading.is_threadsafe("omp") and _threading.is_threadsafe("tbb")
    assert not _threading.is_threadsafe("workqueue")
    assert _threading.is_forksafe("workqueue") and _threading.is_forksafe("tbb")
    assert "fastbp._threading" in sys.modules  # imported with fastbp, before any launch


def test_engine_passes_threaded_only_where_products_split(monkeypatch):
    """The CPU engine hands the drivers a threaded flag only for nets whose largest product
    reaches gemm.PARALLEL_MIN_MACS at the batch's rows, and only where threads are
    allowed; otherwise None (the specialisation compiled without threaded code). The flag is
    gemm.THREADED_NO_STREAM where no weight matrix can stream (64-128-10's are far below
    1 MiB). After a fit, evaluation keeps the fit's choice (one compiled specialisation)
    unless threads stopped being allowed (a forked child under GNU OpenMP, one thread)."""
    from fastbp import _engine_cpu
    from fastbp.kernels.cpu.gemm import PARALLEL_MIN_MACS, THREADED_NO_STREAM as NO_STREAM
    allowed = [True]
    monkeypatch.setattr(_threading, "products_may_thread", lambda: allowed[0])
    monkeypatch.setattr(_engine_cpu, "products_may_thread", lambda: allowed[0])
    eng = _engine_cpu.CPUEngine([64, 128, 10], [1, 0], 0, np.float32)
    small, large = PARALLEL_MIN_MACS // (64 * 128), PARALLEL_MIN_MACS // (64 * 128) + 1
    assert (small - 1) * 64 * 128 < PARALLEL_MIN_MACS <= large * 64 * 128
    assert eng._threaded(small - 1) is None
    assert eng._threaded(large) == NO_STREAM and eng._threaded(large) is not True
    assert _engine_cpu.CPUEngine([64, 128, 10], [1, 0], 0, np.float64)._threaded(large) == NO_STREAM
    assert _engine_cpu.CPUEngine([64, 4096, 10], [1, 0], 0, np.float32)._threaded(1) is True
    X, Y = np.zeros((small - 1, 64), np.float32), np.zeros((small - 1, 10), np.float32)
    eng.begin_fit(X, Y, 32)
    eng.end_fit()
    assert eng._threaded(4096) is None  # evaluation runs the fit's (serial) specialisation
    eng.begin_fit(np.zeros((large, 64), np.float32), np.zeros((large, 10), np.float32), large)
    eng.end_fit()
    assert eng._threaded(8) == NO_STREAM  # the fit's (threaded) specialisation
    allowed[0] = False
    assert eng._threaded(8) is None  # threads no longer allowed: never launch them
    assert _engine_cpu.CPUEngine([64, 128, 10], [1, 0], 0, np.float32)._threaded(4096) is None
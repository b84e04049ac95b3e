"""The cold-start compile helper (fastbp/_compile_helper.py): it compiles exactly the kernels
the training driver will ask for, starts only where it can help, and never gets in a fit's
way."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbp
from fastbp import _compile_helper as ch
from fastbp.kernels.cpu import network as K

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A cold process: for a plain fit, then for a checked one (a net of the same shape and
# optimizer), the helper's compile and then a fit as the engine runs it when a helper was
# started (a stand-in process that has already finished), recording which functions each
# compiles, in order; then a net with another loss. One process for both drivers: they
# share their forward pass and products, which a second cold process compiled again.
MATCH = textwrap.dedent("""
    import os, sys, tempfile
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
    import numpy as np
    from numba.core import event as ev
    import fastbp
    from fastbp import _compile_helper as ch
    from fastbp import training
    compiled = []
    class Listener(ev.Listener):
        def on_start(self, event):
            compiled.append(event.data["dispatcher"].py_func.__qualname__)
        def on_end(self, event):
            compiled.append("/" + event.data["dispatcher"].py_func.__qualname__)
    ev.register("numba:compile", Listener())
    class Finished:
        returncode = 0
        def poll(self):
            return 0
        def wait(self, timeout=None):
            return 0
    helper_start = ch.maybe_start
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    for checked in (False, True):
        if checked:  # no recovery snapshot: the checked driver, as for nets above 4 MiB
            training.SNAPSHOT_MAX_BYTES = 0
        net = fastbp.Network([6, 8, 3], activation="tanh", output="softmax",
                             loss="cross_entropy", dtype="float64", seed=0)
        opt = fastbp.SGD(lr=0.1, momentum=0.9)
        compiled.clear()
        ch.compile_backward(ch.spec(net._engine, 4, opt.code, opt.n_state, None, checked))
        print(list(compiled))
        compiled.clear()
        ch.maybe_start = lambda *args: Finished()
        net.fit(X, y, epochs=1, batch_size=4, optimizer=opt, validation_data=(X[:3], y[:3]))
        net.predict(X)
        ch.maybe_start = helper_start
        print(list(compiled))
    # another loss and output, the same optimizer (checked too): a driver of its own, the
    # same update
    compiled.clear()
    net2 = fastbp.Network([6, 8, 1], activation="tanh", output="identity", loss="mse",
                          dtype="float64", seed=0)
    net2.fit(X, rng.standard_normal(10), epochs=1, batch_size=4,
             optimizer=fastbp.SGD(lr=0.1, momentum=0.9))
    print(compiled)
""")


def test_helper_compiles_what_the_driver_then_loads():
    """After the helper's compile, the driver's own compile compiles none of the backward
    kernels again: the helper gave them the driver's argument types. The update is compiled
    once, in this process, before the driver (which then finds it compiled). The validation
    pass and a prediction after the fit compile nothing more: the helper compiled their
    stand-alone forward pass. The checked driver has a backward pass and update functions
    of its own; the same holds for them (the kernels it shares with the plain driver, which
    the same process compiled just before, it compiles neither in the helper nor in the fit).
    A second net with another loss and the same optimizer reuses the update functions and
    the activation kernels."""
    env = dict(os.environ, FASTBP_COMPILE_HELPER="0")
    out = subprocess.run([sys.executable, "-c", MATCH], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    events = [eval(line) for line in out.stdout.strip().splitlines()[-5:]]
    backward = {"matmul_nt", "matmul_tn", "output_delta", "mul_activation_grad_2d"}
    checked_backward = {"_deltas_and_gradients", "_fused_layers_gradients"}
    plain_update, checked_update = ["apply_update"], ["update_is_finite"]
    for helper_events, fit_events, want, update in (
            (events[0], events[1], backward, plain_update),
            (events[2], events[3], checked_backward, checked_update)):
        # compile starts (ends are "/name"); and what the fit compiled after the driver
        by_helper = [e for e in helper_events if not e.startswith("/")]
        by_fit = [e for e in fit_events if not e.startswith("/")]
        after_driver = [e for e in fit_events[fit_events.index("/train_batches") + 1:]
                        if not e.startswith("/")]
        assert want <= set(by_helper), by_helper  # the helper did compile them...
        # ...and the fit compiled none of them again
        assert not (backward | checked_backward) & set(by_fit), by_fit
        assert not set(plain_update + checked_update + ["sgd_range"]) & set(by_helper), \
            by_helper  # this process's
        for name in update:
            assert by_fit.count(name) == 1, (name, by_fit)
            assert by_fit.index(name) < by_fit.index("train_batches"), by_fit
        assert "train_batches" in by_fit
        # the validation pass and the prediction compile nothing more: the helper made their
        # stand-alone forward pass (the plain one's, which the checked fit's shares), and the
        # validation's loss takes the driver's target type
        assert after_driver == [], after_driver
    assert "forward_network" in events[0], events[0]
    assert "apply_update" not in events[3], events[3]  # the plain driver's, shared
    # these nets never thread: no driver of theirs compiles the fused step
    assert not [e for e in events if "_fused_update" in e], events
    # the update functions take the optimizer's part of ``uses`` only, the layers' activation
    # kernels its activations: a net that differs in loss and output (its hidden activation
    # the same) compiles its own driver but finds them compiled
    other = events[4]
    assert "train_batches" in other, other
    assert not set(plain_update + checked_update + ["bias_activation"]) & set(other), other


# A cold process, for a threaded net: the argument types each threaded driver (plain, then
# checked) asks ``_deltas_and_gradients`` for, recorded as its compile starts and then cut
# short (only the forward pass is compiled first), and the helper's for the same fit.
THREADED_MATCH = textwrap.dedent("""
    import os, tempfile
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
    import numpy as np
    import fastbp
    from fastbp import _compile_helper as ch
    from fastbp import training
    from fastbp.kernels.cpu import network as K
    class Recorded(Exception):
        pass
    asked = []
    def record(sig):
        asked.append(tuple(sig))
        raise Recorded
    K._deltas_and_gradients.compile = record
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 64)).astype(np.float32), rng.integers(0, 4, 32)
    for checked in (False, True):
        if checked:
            training.SNAPSHOT_MAX_BYTES = 0
        net = fastbp.Network([64, 256, 256, 4], dtype="float32", seed=0)
        opt = fastbp.SGD(lr=0.01, momentum=0.9)
        asked.clear()
        try:
            net.fit(X, y, epochs=1, batch_size=16, optimizer=opt)
        except Exception:
            pass
        eng = net._engine
        spec = ch.spec(eng, 16, opt.code, opt.n_state, eng._fit_threaded, checked)
        fn, helper_types = ch.backward_calls(spec)[0]
        assert fn is K._deltas_and_gradients
        print(repr((eng._fit_threaded, eng._checked, str(asked[:1]), str([helper_types]))))
""")


def test_helper_gives_threaded_drivers_their_backward_types():
    """Both threaded drivers find the helper's ``_deltas_and_gradients`` in the cache: the
    helper compiles it for the very argument types they ask for. (A constant argument in the
    driver's call, typed as a literal, had made the plain driver ask for another one.)"""
    env = dict(os.environ, FASTBP_COMPILE_HELPER="0")
    out = subprocess.run([sys.executable, "-c", THREADED_MATCH], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = [eval(line) for line in out.stdout.strip().splitlines()[-2:]]
    assert [r[1] for r in rows] == [None, True]  # the plain driver, then the checked one
    for threaded, _, asked, helper in rows:
        assert threaded is not None  # a threaded driver, as the test means
        assert asked != "[]" and asked == helper, (asked, helper)


def _fit_once(monkeypatch, started, cached=False, **net_kwargs):
    """One small fit with the helper's decision observed: ``started`` collects the specs
    ``start`` is asked for (nothing is started)."""
    monkeypatch.setattr(ch, "driver_cached", lambda dispatcher, args: cached)
    monkeypatch.setattr(ch, "start", lambda spec: started.append(spec))
    net = fastbp.Network([5, 7, 3], seed=0, **net_kwargs)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
    net.fit(X, y, epochs=2, batch_size=4)
    net.fit(X, y, epochs=1, batch_size=4)  # the same engine again: no second helper
    return net


def test_helper_starts_once_for_a_cold_driver(monkeypatch):
    monkeypatch.setenv(ch.ENV, "1")
    monkeypatch.setattr(ch, "enabled", lambda: True)
    started = []
    net = _fit_once(monkeypatch, started)
    assert len(started) == 1
    spec = started[0]
    assert spec["sizes"] == [5, 7, 3] and spec["rows"] == 4 and spec["dtype"] == net.dtype.name
    assert spec["codes"] == [int(c) for c in net._engine.codes]
    assert spec["opt_code"] == net.optimizer.code and spec["n_state"] == 0
    assert spec["threaded"] is None and spec["checked"] is False


@pytest.mark.parametrize("cached", [True, None])
def test_no_helper_for_a_cached_or_unknown_driver(monkeypatch, cached):
    monkeypatch.setattr(ch, "enabled", lambda: True)
    started = []
    _fit_once(monkeypatch, started, cached=cached)
    assert started == []


def test_no_helper_when_turned_off_or_not_the_first_call(monkeypatch):
    monkeypatch.setattr(ch, "driver_cached", lambda dispatcher, args: False)
    monkeypatch.setattr(ch, "start", lambda spec: pytest.fail("started"))
    monkeypatch.setenv(ch.ENV, "0")
    assert not ch.enabled()
    _fit_once(monkeypatch, [])
    monkeypatch.setattr(ch, "enabled", lambda: True)
    assert ch.maybe_start(K.train_batches, (), False, dict) is None  # not the first


def test_checked_training_starts_a_helper_for_its_own_driver(monkeypatch):
    """Checked training (no recovery snapshot: nets above 4 MiB) gets a helper too, with a
    spec for the checked driver's backward pass."""
    from fastbp import training
    monkeypatch.setattr(training, "SNAPSHOT_MAX_BYTES", 0)
    monkeypatch.setattr(ch, "enabled", lambda: True)
    started = []
    _fit_once(monkeypatch, started)
    assert len(started) == 1 and started[0]["checked"] is True


def test_enabled_needs_two_cpus_and_a_python_interpreter(monkeypatch):
    monkeypatch.setenv(ch.ENV, "1")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert ch.enabled()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not ch.enabled()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert not ch.enabled()


def test_driver_cached_reads_memory_and_the_disk_cache(tmp_path, monkeypatch):
    """False before the first compile, True from memory after it, True from the on-disk
    index for a new dispatcher of the same function, None for something that is no cached
    dispatcher."""
    import importlib
    import numba
    (tmp_path / "probe_mod.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef probe(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("probe_mod")
    assert ch.driver_cached(mod.probe, (1.5,)) is False
    assert mod.probe(1.5) == 2.5
    assert ch.driver_cached(mod.probe, (1.5,)) is True
    again = numba.njit(cache=True)(mod.probe.py_func)
    assert not again.overloads
    assert ch.driver_cached(again, (1.5,)) is True  # from the index file
    assert ch.driver_cached(again, (1,)) is False  # another signature
    assert ch.driver_cached(object(), (1.5,)) is None


def test_a_running_helper_is_ended_when_the_drivers_call_returns(monkeypatch):
    """A helper still compiling when the fit's first call returns is terminated and reaped,
    and the fit's results are those of a fit without it."""
    procs = []

    def sleeper(spec):
        procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return procs[-1]
    monkeypatch.setattr(ch, "enabled", lambda: True)
    monkeypatch.setattr(ch, "driver_cached", lambda dispatcher, args: False)
    monkeypatch.setattr(ch, "start", sleeper)
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
    with_helper = fastbp.Network([5, 7, 3], seed=0)
    with_helper.fit(X, y, epochs=2, batch_size=4)
    assert len(procs) == 1 and procs[0].returncode is not None  # ended and reaped
    monkeypatch.setattr(ch, "start", lambda spec: None)
    plain = fastbp.Network([5, 7, 3], seed=0)
    plain.fit(X, y, epochs=2, batch_size=4)
    np.testing.assert_array_equal(with_helper.get_flat_parameters(), plain.get_flat_parameters())


def test_stop_accepts_none_and_finished_processes():
    ch.stop(None)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    ch.stop(done)
    assert done.returncode == 0


def test_start_returns_none_when_the_interpreter_cannot_run(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert ch.start({}) is None


def test_started_helper_compiles_into_the_cache_and_exits(tmp_path, monkeypatch):
    """The real child process: started for a tiny net with its own cache folder, it runs this
    fastbp (whatever the working directory) and exits 0 after compiling."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    net = fastbp.Network([3, 4, 2], activation="relu", output="softmax",
                         loss="cross_entropy", dtype="float64", seed=0)
    opt = fastbp.SGD(lr=0.1)
    proc = ch.start(ch.spec(net._engine, 2, opt.code, opt.n_state, None))
    assert proc is not None
    assert proc.wait(timeout=600) == 0
    assert list((tmp_path / "cache").rglob("*.nbi")), "nothing was written to the cache"

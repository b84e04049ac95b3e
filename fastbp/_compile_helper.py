"""A cold start compiled on two cores.

A network's first fit with an empty compile cache spends nearly all its time compiling the
training driver (``train_batches``) and its kernels, on one core. When the driver is not
cached yet, the engine starts this module in a second process, which compiles the driver's
backward pass (``backward_network``'s callees, for the argument types the driver gives them)
into the same on-disk cache, and then the stand-alone forward pass that the fit's validation
and later predictions call. Meanwhile this process compiles the update (``apply_update``,
``compile_update``) and then the driver, which begins with the forward pass. When it reaches
the backward kernels the helper has finished, Numba loads them from the cache instead of
compiling them. The compiled code is the same whichever process compiled it.

Why the update stays here: the forward pass and the backward pass are about the same work,
and the helper first has to start Python and import fastbp. When the helper compiled the
update after the backward pass, this process often reached the update first and compiled it
too (timelines in docs/performance.md, sixteenth session); compiled here first, it leaves the
helper the backward pass alone, done before the driver asks for it.

Checked training (``train_batches``' ``checked``: nets above 4 MiB of parameters and state)
has a driver of its own: its backward pass is ``_deltas_and_gradients`` and
``_fused_layers_gradients``, which the helper compiles, and its update ``update_is_finite``,
``_fused_update`` and ``apply_update``, which this process compiles first. The wide
1024-2048-2048-1024 net's cold first epoch: 55.8 / 46.8 and 53.1 / 38.9 s without / with
(alternating), a digits-sized net forced to checked training 31.6 / 17.9 and 25.5 / 18.4 s.

Measured on the 2-core Intel machine (docs/performance.md), fresh processes with empty caches,
without / with the helper, alternating: the digits net's import and first epoch 16.7 / 11.0,
14.1 / 9.45 and 12.2 / 9.3 s (helper compiling backward and update, fifteenth session); a
threaded 784-256-128-10 net 28.7 / 21.6 and 27.1 / 19.3 s.

No helper is started:
- with ``FASTBP_COMPILE_HELPER=0`` in the environment (the test suite sets it: its two
  workers already use both cores);
- with fewer than two CPUs available to this process;
- from a frozen application, whose ``sys.executable`` is not a Python interpreter;
- when the driver's specialisation is already compiled or cached.

The helper is a plain child process with its output discarded, importing this same fastbp
(its folder goes first on the child's ``PYTHONPATH``). When the driver's call returns, the
engine ends the helper if it is still running. Numba writes each cache file under a temporary
name and renames it, so a helper ended mid-write leaves no broken entry. Where both processes
add a specialisation of the same function to its cache index at the same moment, one entry
can be lost: a later cold process compiles it again. Nothing is ever read from the cache but
what Numba itself compiled for that signature, so results never depend on the helper.
"""
import json
import os
import subprocess
import sys

#: Set to "0" to never start a helper.
ENV = "FASTBP_COMPILE_HELPER"


def enabled():
    """Whether a helper may be started in this process at all."""
    if os.environ.get(ENV, "1") == "0" or getattr(sys, "frozen", False) or not sys.executable:
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus >= 2


def driver_cached(dispatcher, args):
    """Whether ``dispatcher`` (a cached ``@njit`` function) holds a specialisation for
    ``args`` in memory or in its on-disk cache; None when that cannot be told (Numba's
    cache internals differ), in which case no helper is started."""
    try:
        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
        if sig in dispatcher.overloads:
            return True
        cache = dispatcher._cache
        key = cache._index_key(sig, dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - private API: any failure means "do not know"
        return None


def maybe_start(dispatcher, args, first_call, spec_of):
    """The helper process for a ``train_batches`` call with ``args`` (checked or not), or
    None: only on an engine's first call with an optimizer (``first_call``), where
    ``enabled()`` and the driver is known not to be compiled yet. ``spec_of()`` gives its
    ``spec``."""
    if not first_call or not enabled():
        return None
    if driver_cached(dispatcher, args) is not False:
        return None
    return start(spec_of())


def spec(engine, rows, opt_code, n_state, threaded, checked=False):
    """What the helper needs to rebuild the driver's backward-pass argument types
    (``checked``: the checked driver's, ``train_batches``' ``checked``)."""
    return {"sizes": [int(v) for v in engine.sizes], "codes": [int(v) for v in engine.codes],
            "loss_code": int(engine.loss_code), "dtype": engine.dtype.name, "rows": int(rows),
            "opt_code": int(opt_code), "n_state": int(n_state),
            "threaded": None if threaded is None else (True if threaded is True
                                                        else int(threaded)),
            "checked": bool(checked)}


def start(spec):
    """Start the helper for ``spec`` (``spec()``); returns the process, or None if it could
    not be started."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds fastbp/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in [env.get("PYTHONPATH")] if p])
    try:
        return subprocess.Popen([sys.executable, "-m", "fastbp._compile_helper",
                                 json.dumps(spec)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, close_fds=True, env=env)
    except OSError:
        return None


def stop(proc):
    """End a helper that is still running (its remaining work would only repeat this
    process's) and reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - terminate is not refused
        proc.kill()
        proc.wait()


def compile_backward(spec):
    """Compile, without running them, the backward pass (``backward_network``, or for a
    checked or threaded driver ``_deltas_and_gradients``) for the argument types
    ``train_batches`` gives it on the network ``spec`` describes, then the stand-alone
    ``forward_network`` that a fit's validation pass and later predictions call (the driver
    inlines its own forward pass, so they compile it once more after the first epoch's
    batches). Their callees go into the compile cache as they are compiled."""
    for fn, types in backward_calls(spec):
        fn.compile(types)


def backward_calls(spec):
    """``compile_backward``'s work: (dispatcher, argument types) pairs, in order."""
    from ._aligned import aligned_zeros
    from ._engine_cpu import CPUEngine
    from .kernels.cpu import network as K

    # the engine's own layout: parameters, workspaces and ``Uses`` as the fit builds them
    engine = CPUEngine(spec["sizes"], spec["codes"], spec["loss_code"], spec["dtype"])
    rows, threaded = spec["rows"], spec["threaded"]
    grads = aligned_zeros(engine.n_params, engine.dtype)
    A_buf, Z_buf, D_buf, Y_buf = engine._workspace(rows)
    acts = engine._uses  # the driver's ``without_optimizer(uses)``

    def deltas(measure):  # ``_deltas_and_gradients``' call, fusing
        return (K._deltas_and_gradients, (engine.params, engine.sizes, engine.codes,
                                          engine.loss_code, Y_buf, rows, rows, A_buf, Z_buf,
                                          D_buf, grads, True, measure, threaded, acts))

    if spec["checked"]:  # the checked driver's backward pass: two functions of its own
        backward = (deltas(True), (K._fused_layers_gradients, (engine.sizes, rows, rows, A_buf,
                                                               Z_buf, grads, threaded)))
    elif threaded is not None:  # threaded: the backward pass that can fuse (train_batches;
        # it passes ``measure`` as a bool, never the constant, whose literal type would ask for
        # another specialisation than this one: tests/test_compile_helper.py compares them)
        backward = (deltas(False),)
    else:
        backward = ((K.backward_network, (engine.params, engine.sizes, engine.codes,
                                          engine.loss_code, Y_buf, rows, rows, A_buf, Z_buf,
                                          D_buf, grads, threaded, acts)),)
    # then the forward pass as ``CPUEngine._forward_blocks`` and ``_loss_and_gradients`` call
    # it after a fit
    forward = (K.forward_network, (engine.params, engine.sizes, engine.codes, rows, rows, A_buf,
                                   Z_buf, threaded, acts))
    return [(fn, _types(fn, args)) for fn, args in backward + (forward,)]


def _types(fn, args):
    """The argument types of a call of ``fn`` with ``args`` (as ``fn``'s dispatcher types them)."""
    return tuple(fn.typeof_pyval(a) for a in args)


def compile_update(params, grads, state, opt, hyper, step, nw, threaded, uses, checked, sizes,
                   rows, A_buf, Z_buf, D_buf):
    """Compile, in this process and without running them, the update functions for the
    argument types ``train_batches`` (given these arguments) passes them: ``apply_update``,
    for the checked driver (``checked`` True) ``update_is_finite``, and for a threaded one
    ``_fused_update``. The driver then finds them compiled. The engine calls it while a
    helper compiles the backward pass."""
    from .kernels.cpu import network as K
    uses = uses.optimizer_only()  # as the driver passes it (``uses.optimizer_only``)
    update_args = (params, grads, state, opt, hyper, step, nw, threaded, uses)
    calls = []
    if checked:
        calls.append((K.update_is_finite, update_args))
    if threaded is not None:
        calls.append((K._fused_update, (params, grads, state, opt, hyper, step, nw, sizes, rows,
                                        rows, A_buf, Z_buf, D_buf, threaded, uses)))
    calls.append((K.apply_update, update_args))
    for fn, args in calls:
        fn.compile(_types(fn, args))


if __name__ == "__main__":
    compile_backward(json.loads(sys.argv[1]))

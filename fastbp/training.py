"""The training loop around the compiled minibatch driver.

Python runs once per *chunk* of minibatches, not per minibatch: a chunk is sized to take about
``CHUNK_SECONDS`` so that progress, Ctrl-C and divergence checks stay responsive while the
per-call overhead stays negligible.
"""
import math
import signal
import threading

try:  # the C functions behind ``signal``: the same, without its enum conversions (~20 us a fit)
    import _signal
except ImportError:  # pragma: no cover (other Pythons)
    _signal = signal
import time
import warnings

import numpy as np

from ._validation import check_choice, check_int
from .callbacks import Callback, EarlyStopping, History, ProgressBar
from .network import _accuracy
from .optimizers import make_optimizer

CHUNK_SECONDS = 0.2
# Divergence recovery, two ways. Parameters + optimizer state up to SNAPSHOT_MAX_BYTES: each
# chunk boundary scans them and copies them (the snapshot), and chunks stretch so that this
# costs at most ~1/SNAPSHOT_RATIO of the training time, but never past MAX_CHUNK_SECONDS,
# which bounds how long Ctrl-C waits. Larger (and where the engine can): the compiled loop
# checks every update before writing it, so the parameters never turn non-finite and no copy
# is kept; a copy would add a third or more to fit's peak memory (wide net: 1.45x the budget).
SNAPSHOT_RATIO = 50
MAX_CHUNK_SECONDS = 1.0
SNAPSHOT_MAX_BYTES = 4 << 20


def checks_updates(n_params, state_rows, dtype):
    """Whether fit checks each update before writing it (no snapshot) for ``n_params``
    parameters with ``state_rows`` rows of optimizer state: above SNAPSHOT_MAX_BYTES."""
    return (1 + state_rows) * n_params * np.dtype(dtype).itemsize > SNAPSHOT_MAX_BYTES


class DivergenceError(FloatingPointError):
    """The training loss became NaN or Inf. The network keeps its last finite parameters."""


def fit(net, X, y, epochs=10, batch_size=32, optimizer="sgd", shuffle=True,
        validation_data=None, progress=False, callbacks=None, early_stopping=None,
        checkpoint=None, checkpoint_every=1, resume=False, on_divergence="raise"):
    """Train ``net`` by minibatch backpropagation.

    Parameters
    ----------
    net : Network
        The network to train, in place.
    X : array_like
        Inputs (n_samples, n_features).
    y : array_like
        Targets: labels (n,) or one-hot (n, K) for cross_entropy, 0/1 for
        binary_cross_entropy, floats (n,) or (n, K) for mse.
    epochs : int
        Epochs to run (>= 0). With ``resume=True``, the total to reach, counting epochs done.
    batch_size : int
        Rows per minibatch (>= 1); the last, smaller batch is used, not dropped.
    optimizer : str or Optimizer
        "sgd", "adam", or an instance of fastbp.SGD / fastbp.Adam. Passing the same instance
        as the previous fit continues its state (momentum, Adam moments, step count).
    shuffle : bool
        Shuffle the samples each epoch (from the network's seeded generator).
    validation_data : tuple or None
        ``(X_val, y_val)``: val_loss (and val_accuracy for classification) per epoch.
    progress : bool
        Show a progress bar on stderr.
    callbacks : list or None
        Callback instances or callables ``f(net, record)``; a True return stops training.
    early_stopping : EarlyStopping, int or None
        Stop on a stalled val_loss (loss without validation data); an int is the patience.
    checkpoint : str or path or None
        Save the full training state here every ``checkpoint_every`` epochs and at the end.
    checkpoint_every : int
        Epochs between checkpoints (>= 1).
    resume : bool
        Continue the state of the network (e.g. ``fastbp.load(checkpoint)``): its optimizer,
        optimizer state, schedule position and shuffling generator, up to ``epochs`` in all.
    on_divergence : {"raise", "stop"}
        When the loss turns NaN/Inf: raise DivergenceError, or warn and return. Either way
        the network keeps its last finite parameters.

    Returns
    -------
    History
    """
    epochs = check_int("epochs", epochs, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    check_choice("on_divergence", on_divergence, ("raise", "stop"))
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool; got {shuffle!r}")
    Xc = net._X(X)
    Y = net._Y(y, Xc.shape[0])
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a tuple (X_val, y_val); got "
                             f"{type(validation_data).__name__}")
        Xv = net._X(validation_data[0], "validation_data[0]")
        val = (Xv, net._Y(validation_data[1], Xv.shape[0], "validation_data[1]"))
    cbs = _callbacks(callbacks, early_stopping)

    with net._lock:
        if resume:
            if net.optimizer is None:
                raise ValueError("resume=True needs a network with training state (from "
                                 "fastbp.load of a checkpoint, or a previous fit)")
            opt = net.optimizer
        else:
            opt = make_optimizer(optimizer)
            if opt is not net.optimizer or net._opt_state is None:
                net._opt_state = net._engine.new_state(opt.n_state)
                net._opt_step[:] = 0
            net.optimizer = opt
            net.epochs_done = 0
            net._partial_epoch = None
        return _train(net, Xc, Y, val, epochs, batch_size, opt, shuffle, progress, cbs,
                      checkpoint, checkpoint_every, on_divergence)


def _callbacks(callbacks, early_stopping):
    cbs = []
    for cb in callbacks or []:
        if isinstance(cb, Callback):
            cbs.append(cb)
        elif callable(cb):
            cbs.append(_FnCallback(cb))
        else:
            raise TypeError(f"callbacks must hold Callback instances or callables; got {cb!r}")
    if early_stopping is not None and early_stopping is not False:
        if isinstance(early_stopping, EarlyStopping):
            cbs.append(early_stopping)
        else:
            cbs.append(EarlyStopping(patience=check_int("early_stopping", early_stopping, 1)))
    return cbs


class _FnCallback(Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, net, record):
        return bool(self.fn(net, record))


def _train(net, X, Y, val, epochs, batch_size, opt, shuffle, progress, cbs, checkpoint,
           checkpoint_every, on_divergence):
    engine = net._engine
    n = X.shape[0]
    n_batches = math.ceil(n / batch_size)
    hist = History()
    bar = ProgressBar(epochs, n_batches) if progress else None
    if not engine.all_finite(net._opt_state):
        raise DivergenceError("the network's parameters or optimizer state contain NaN or Inf "
                              "before training starts; set finite parameters first")
    # Divergence recovery (see SNAPSHOT_MAX_BYTES). With a snapshot, ``good`` always holds
    # finite parameters and optimizer state (the latest seen at a chunk boundary): the live
    # state is scanned first (compiled, no allocation) and copied only when finite, so one
    # buffer, allocated once per fit, suffices. Checked updates need none.
    checked = (getattr(engine, "can_check_updates", False)
               and checks_updates(engine.n_params, net._opt_state.shape[0], net.dtype))
    good = None
    chunk_seconds = CHUNK_SECONDS
    if not checked:
        good = _Snapshot(net)
        ts = time.perf_counter()
        good.take(net)
        snap_seconds = time.perf_counter() - ts
        chunk_seconds = CHUNK_SECONDS and max(
            CHUNK_SECONDS, min(MAX_CHUNK_SECONDS, SNAPSHOT_RATIO * snap_seconds))
    engine.begin_fit(X, Y, batch_size, checked)
    for cb in cbs:
        cb.on_fit_begin(net)
    # measured seconds per batch, sizes the chunks; the engine keeps the last fit's for the
    # same batch size, so a fit per epoch (a common loop) needs no 1-batch probe chunk
    timing = getattr(engine, "_seconds_per_batch", None)
    per_batch = timing[1] if timing and timing[0] == batch_size else None
    ctrl_c = _DeferredInterrupt()
    try:
        ctrl_c.__enter__()
        while net.epochs_done < epochs:
            epoch = net.epochs_done
            t0 = time.perf_counter()
            partial = getattr(net, "_partial_epoch", None)
            net._partial_epoch = None
            if partial is not None and partial["key"] == (epoch, n, batch_size, bool(shuffle)):
                # Resume inside the epoch a Ctrl-C interrupted: same order, same position.
                rng_state, order = partial["rng_state"], partial["order"]
                loss_total, done = partial["loss_total"], partial["done"]
            else:
                rng_state = net._rng.bit_generator.state
                order = net._rng.permutation(n) if shuffle else np.arange(n)
                order = order.astype(np.int64, copy=False)  # already int64 on 64-bit: no copy
                loss_total, done = 0.0, 0
            hyper = opt.hyper(epoch, epochs)
            while done < n_batches:
                if ctrl_c.pending:  # a clean point: every finished batch is accounted for
                    net._partial_epoch = {"key": (epoch, n, batch_size, bool(shuffle)),
                                          "rng_state": rng_state, "order": order,
                                          "loss_total": loss_total, "done": done}
                    ctrl_c.fire()
                chunk = 1 if per_batch is None else max(1, int(chunk_seconds / per_batch))
                last = min(n_batches, done + chunk)
                tc = time.perf_counter()
                loss_sum, ran, status = engine.run_batches(order, done, last, opt.code, hyper,
                                                           net._opt_state, net._opt_step)
                if ran:
                    per_batch = (time.perf_counter() - tc) / ran
                    engine._seconds_per_batch = (batch_size, per_batch)
                loss_total += loss_sum
                done += ran
                if status == 0 and good is not None:
                    # A finite loss does not prove the update after it was finite: check the
                    # parameters (and optimizer state) at every chunk boundary.
                    if engine.all_finite(net._opt_state):
                        good.take(net)
                    else:
                        status = 2
                if status != 0:
                    net._rng.bit_generator.state = rng_state
                    return _diverged(net, hist, good, epoch, done, status, on_divergence,
                                     checked)
                if bar:
                    bar.update(epoch, done, loss_total / min(n, done * batch_size))
            seconds = time.perf_counter() - t0
            record = {"epoch": epoch, "loss": loss_total / n, "lr": hyper[0],
                      "seconds": seconds, "samples_per_s": n / seconds if seconds else math.inf}
            if val is not None:
                vloss, vout = engine.evaluate(val[0], val[1])  # one forward pass for both
                record["val_loss"] = float(vloss)
                vacc = _accuracy(net.loss_name, vout, val[1])
                if vacc is not None:  # classification losses only
                    record["val_accuracy"] = vacc
            net.epochs_done = epoch + 1
            hist.append(record)
            if bar:
                bar.end_epoch(record)
            # Checkpoint before callbacks run: a callback that raises cannot lose the epoch.
            if checkpoint is not None and (net.epochs_done % checkpoint_every == 0
                                           or net.epochs_done == epochs):
                net.save(checkpoint)
            if any([cb.on_epoch_end(net, record) for cb in cbs]):
                hist.stopped_early = True
                if checkpoint is not None:
                    net.save(checkpoint)
                break
            if ctrl_c.pending:  # between epochs: the epoch (and its checkpoint) is complete
                ctrl_c.fire()
    finally:
        ctrl_c.__exit__()
        engine.end_fit()
    for cb in cbs:
        cb.on_fit_end(net)
    if ctrl_c.pending:  # arrived after the last clean point: training is complete, deliver it
        ctrl_c.fire()
    return hist


class _DeferredInterrupt:
    """Ctrl-C (SIGINT) during fit sets a flag; the loop raises KeyboardInterrupt at the next
    clean point (between compiled chunks, at most ~CHUNK_SECONDS later), never between a
    compiled update and its bookkeeping. A second Ctrl-C raises at once. Only active in the
    main thread and only over Python's default SIGINT handler."""

    def __init__(self):
        self.pending = False
        self._old = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and _signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._old = _signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def fire(self):
        self.pending = False
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._old is not None:
            _signal.signal(signal.SIGINT, self._old)
            self._old = None


class _Snapshot:
    """Host copies of the parameters, optimizer state and Adam step count."""

    def __init__(self, net):
        self.params = np.empty(net._engine.n_params, dtype=net.dtype)
        self.state = np.empty((net._opt_state.shape[0], net._engine.n_params), dtype=net.dtype)
        self.step = 0

    def take(self, net):
        net._engine.params_to_host(self.params)
        if self.state.shape[0]:
            net._engine.state_to_host(net._opt_state, self.state)
        self.step = int(net._opt_step[0])

    def finite(self):
        return bool(np.isfinite(self.params).all() and np.isfinite(self.state).all())

    def restore(self, net):
        net._engine.set_params(self.params)
        if self.state.shape[0]:
            net._engine.state_from_host(net._opt_state, self.state)
        net._opt_step[0] = self.step


def _diverged(net, hist, good, epoch, done, status, on_divergence, checked):
    """status 1: batch ``done + 1`` had a non-finite loss and made no update; the parameters
    after batch ``done`` are kept when they (and the optimizer state) are finite. status 2:
    with a snapshot, the update of batch ``done`` made them non-finite; with checked updates,
    batch ``done + 1``'s update would have and was not made. Non-finite values are never kept:
    with a snapshot the network goes back to ``good``, the last finite state seen at a chunk
    boundary; checked updates never write one."""
    if good is not None:
        current = _Snapshot(net)
        current.take(net)
        if not current.finite():
            good.restore(net)
    if status == 1:
        what = f"the loss became NaN or Inf in epoch {epoch + 1}, batch {done + 1}"
    elif checked:
        what = (f"the update of epoch {epoch + 1}, batch {done + 1} would have made the "
                f"parameters NaN or Inf and was not applied")
    else:
        what = f"the parameters became NaN or Inf in epoch {epoch + 1}, batch {done}"
    msg = (f"training diverged: {what}; the network keeps its last finite parameters. "
           f"Lower the learning rate "
           f"(lr={net.optimizer.lr}) or scale the inputs.")
    hist.diverged = True
    if on_divergence == "raise":
        err = DivergenceError(msg)
        err.history = hist
        raise err
    warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return hist

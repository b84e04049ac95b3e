"""Training history, callbacks, early stopping and the progress bar."""
import math
import sys
import time

from ._validation import check_float, check_int


class History:
    """Per-epoch records returned by ``Network.fit``.

    ``hist.epochs`` is a list of dicts (keys: epoch, loss, lr, seconds, samples_per_s, and
    val_loss / val_accuracy / accuracy where available); ``hist["loss"]`` is one key as a list.
    """

    def __init__(self):
        self.epochs = []
        self.stopped_early = False
        self.best_epoch = None

    def append(self, record):
        """Add one epoch's record.

        Parameters
        ----------
        record : dict
            The epoch's values (loss, val_loss, ...).
        """
        self.epochs.append(record)

    def __getitem__(self, key):
        return [r.get(key) for r in self.epochs]

    def __len__(self):
        return len(self.epochs)

    def __iter__(self):
        return iter(self.epochs)

    def keys(self):
        """Every key that appears in some record, in first-seen order.

        Returns
        -------
        list of str
        """
        keys = []
        for r in self.epochs:
            keys.extend(k for k in r if k not in keys)
        return keys

    def to_dict(self):
        """The history as ``{key: [value per epoch]}`` (None where an epoch lacks the key).

        Returns
        -------
        dict
        """
        return {k: self[k] for k in self.keys()}

    def __repr__(self):
        last = self.epochs[-1] if self.epochs else {}
        return f"History({len(self)} epochs, last={last})"


class Callback:
    """Subclass and override ``on_epoch_end(net, record)``; return True to stop training.

    A plain callable ``f(net, record)`` works too.
    """

    def on_fit_begin(self, net):
        """Called once before the first epoch.

        Parameters
        ----------
        net : Network
            The network being trained.
        """
        pass

    def on_epoch_end(self, net, record):
        """Called after each epoch; return True to stop training.

        Parameters
        ----------
        net : Network
            The network being trained.
        record : dict
            The epoch's record (epoch, loss, lr, val_loss, ...).

        Returns
        -------
        bool
        """
        return False

    def on_fit_end(self, net):
        """Called once after training ends (normally, early, or on divergence with "stop").

        Parameters
        ----------
        net : Network
            The network being trained.
        """
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        Record key to watch: "val_loss" (default; falls back to "loss" without validation data).
    patience : int
        Epochs without improvement before stopping (>= 1).
    min_delta : float
        Smallest decrease that counts as an improvement (>= 0).
    restore_best : bool
        Put back the parameters of the best epoch when stopping or at the end.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, restore_best=True):
        self.monitor = monitor
        self.patience = check_int("patience", patience, 1)
        self.min_delta = check_float("min_delta", min_delta, 0.0)
        self.restore_best = bool(restore_best)

    def on_fit_begin(self, net):
        """Called once before the first epoch.

        Parameters
        ----------
        net : Network
            The network being trained.
        """
        self.best = math.inf
        self.best_epoch = None
        self.wait = 0
        self._best_params = None

    def on_epoch_end(self, net, record):
        """Called after each epoch; return True to stop training.

        Parameters
        ----------
        net : Network
            The network being trained.
        record : dict
            The epoch's record (epoch, loss, lr, val_loss, ...).

        Returns
        -------
        bool
        """
        key = self.monitor if record.get(self.monitor) is not None else "loss"
        value = record[key]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self._best_params = net._engine.get_params()
            return False
        self.wait += 1
        return self.wait >= self.patience

    def on_fit_end(self, net):
        """Called once after training ends (normally, early, or on divergence with "stop").

        Parameters
        ----------
        net : Network
            The network being trained.
        """
        if self.restore_best and self._best_params is not None:
            net._engine.set_params(self._best_params)


class ProgressBar:
    """A one-line text progress bar on stderr (no dependency)."""

    def __init__(self, epochs, n_batches, stream=None, width=24):
        self.epochs, self.n_batches, self.width = epochs, n_batches, width
        self.stream = stream or sys.stderr
        self._t = time.perf_counter()

    def update(self, epoch, batches_done, loss=None):
        if not getattr(self.stream, "isatty", lambda: False)():
            return  # in-epoch redraws only make sense on a terminal; logs get one line per epoch
        frac = batches_done / max(1, self.n_batches)
        fill = int(self.width * frac)
        bar = "#" * fill + "-" * (self.width - fill)
        msg = f"\repoch {epoch + 1}/{self.epochs} [{bar}] {batches_done}/{self.n_batches}"
        if loss is not None:
            msg += f" loss {loss:.4f}"
        self.stream.write(msg)
        self.stream.flush()

    def end_epoch(self, record):
        parts = [f"loss {record['loss']:.4f}"]
        for key in ("accuracy", "val_loss", "val_accuracy"):
            if record.get(key) is not None:
                parts.append(f"{key} {record[key]:.4f}")
        parts.append(f"{record['samples_per_s']:,.0f} samples/s")
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.stream.write(("\r" if tty else "") + f"epoch {record['epoch'] + 1}/{self.epochs} "
                          + "  ".join(parts) + (" " * 8 if tty else "") + "\n")
        self.stream.flush()

"""Training curves with matplotlib (an optional extra: ``pip install fastbp[plot]``).

matplotlib is imported when a plot is made, never by ``import fastbp``. Figures are built with
the object-oriented API (``matplotlib.figure.Figure``), so plotting needs no display, selects no
backend and leaves pyplot's global state alone.
"""
import math

__all__ = ["plot_history", "history_curves"]


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("fastbp.plot needs matplotlib: pip install 'fastbp[plot]' "
                          "(or pip install matplotlib)") from None
    return Figure


def _series(values):
    """A list of floats with None for missing entries, or None when nothing is present."""
    if values is None:
        return None
    out = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
           for v in values]
    return out if any(v is not None for v in out) else None


def history_curves(history):
    """The per-epoch curves of a training run, as plain lists.

    Parameters
    ----------
    history : History, estimator, or dict
        A ``fastbp.History`` (from ``Network.fit``), a fitted ``fastbp.sklearn`` (or
        scikit-learn) MLP estimator (``loss_curve_``, ``validation_scores_``), or a dict of
        per-epoch lists with keys among loss, val_loss, accuracy, val_accuracy.

    Returns
    -------
    dict
        Keys "loss", "val_loss", "accuracy", "val_accuracy" (each a list of floats, None for
        a missing epoch, or None when absent) and "val_score_name" (the label of
        "val_accuracy": "accuracy", or "score" for an estimator's validation scores).

    Raises
    ------
    TypeError
        If ``history`` is none of the accepted kinds.
    ValueError
        If it holds no training loss.
    """
    curves = {"loss": None, "val_loss": None, "accuracy": None, "val_accuracy": None,
              "val_score_name": "accuracy"}
    if hasattr(history, "loss_curve_"):
        curves["loss"] = _series(history.loss_curve_)
        curves["val_accuracy"] = _series(getattr(history, "validation_scores_", None))
        if not hasattr(history, "predict_proba"):
            curves["val_score_name"] = "R^2"
    elif hasattr(history, "epochs") and hasattr(history, "__getitem__"):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            curves[key] = _series(history[key])
    elif isinstance(history, dict):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            curves[key] = _series(history.get(key))
    else:
        raise TypeError("history must be a fastbp History, a fitted MLP estimator "
                        f"(with loss_curve_) or a dict of per-epoch lists; got "
                        f"{type(history).__name__}")
    if curves["loss"] is None:
        raise ValueError("nothing to plot: the history holds no training loss (was the model "
                         "fitted, with a stochastic solver?)")
    return curves


def _plot_curve(ax, values, label, style):
    points = [(i + 1, v) for i, v in enumerate(values) if v is not None]
    ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label,
            marker="o" if len(points) == 1 else None)


def plot_history(history, path=None, title=None):
    """Plot loss (and accuracy) per epoch, training and validation.

    The left panel shows the training loss and, when present, the validation loss; a right
    panel shows training/validation accuracy (or an estimator's validation score) when the
    history has any.

    Parameters
    ----------
    history : History, estimator, or dict
        What ``history_curves`` accepts: a ``fastbp.History``, a fitted MLP estimator, or a
        dict of per-epoch lists.
    path : str or path-like or None
        Save the figure here (the format follows the extension: .png, .svg, .pdf).
    title : str or None
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not registered with pyplot; display it in a notebook or save it).

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import numpy as np, fastbp
    >>> from fastbp.plot import plot_history
    >>> X = np.random.default_rng(0).normal(size=(64, 4)); y = (X[:, 0] > 0).astype(int)
    >>> hist = fastbp.Network([4, 8, 2], seed=0).fit(X, y, epochs=3, validation_data=(X, y))
    >>> fig = plot_history(hist)
    >>> len(fig.axes)
    2
    """
    curves = history_curves(history)
    Figure = _figure_class()
    has_acc = curves["accuracy"] is not None or curves["val_accuracy"] is not None
    fig = Figure(figsize=(10 if has_acc else 5.5, 4), layout="constrained")
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    from matplotlib.ticker import MaxNLocator
    for a in axes:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax = axes[0]
    _plot_curve(ax, curves["loss"], "train loss", "-")
    if curves["val_loss"] is not None:
        _plot_curve(ax, curves["val_loss"], "validation loss", "--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    losses = [v for v in curves["loss"] + (curves["val_loss"] or []) if v is not None]
    if min(losses) > 0 and max(losses) / min(losses) > 20:  # log scale only over decades
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if has_acc:
        ax = axes[1]
        name = curves["val_score_name"]
        if curves["accuracy"] is not None:
            _plot_curve(ax, curves["accuracy"], "train accuracy", "-")
        if curves["val_accuracy"] is not None:
            _plot_curve(ax, curves["val_accuracy"], f"validation {name}", "--")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title is not None:
        fig.suptitle(str(title))
    if path is not None:
        import os
        fig.savefig(os.fspath(path), dpi=100)
    return fig

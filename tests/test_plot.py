"""fastbp.plot: curves from a History, an estimator and a dict; files written; clear errors."""
import sys

import numpy as np
import pytest

import fastbp

pytest.importorskip("matplotlib")
from fastbp.plot import history_curves, plot_history  # noqa: E402


@pytest.fixture(scope="module")
def history():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    net = fastbp.Network([4, 8, 2], seed=0)
    return net.fit(X, y, epochs=4, batch_size=16, optimizer=fastbp.SGD(0.1),
                   validation_data=(X[:32], y[:32]))


def _lines(ax):
    return {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}


def test_history_plot_shows_every_curve(history, tmp_path):
    path = tmp_path / "curves.png"
    fig = plot_history(history, path, title="run 1")
    assert path.read_bytes()[:4] == b"\x89PNG"
    loss_ax, acc_ax = fig.axes
    lines = _lines(loss_ax)
    np.testing.assert_allclose(lines["train loss"], history["loss"])
    np.testing.assert_allclose(lines["validation loss"], history["val_loss"])
    np.testing.assert_allclose(_lines(acc_ax)["validation accuracy"], history["val_accuracy"])
    assert fig._suptitle.get_text() == "run 1"
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3, 4]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_and_dict_inputs(tmp_path):
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPRegressor
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=15, early_stopping=True, random_state=0,
                       n_iter_no_change=100).fit(X, X.sum(1))
    fig = plot_history(reg, tmp_path / "reg.svg")
    assert (tmp_path / "reg.svg").read_text().lstrip().startswith("<?xml")
    np.testing.assert_allclose(_lines(fig.axes[0])["train loss"], reg.loss_curve_)
    assert _lines(fig.axes[1])["validation R^2"] == pytest.approx(reg.validation_scores_)
    fig = plot_history({"loss": [1.0, 0.5, None, 0.25]})
    assert len(fig.axes) == 1  # no accuracy: one panel
    assert history_curves({"loss": [1.0], "val_loss": [float("nan")]})["val_loss"] is None


def test_errors(monkeypatch):
    with pytest.raises(TypeError, match="History"):
        plot_history([1, 2, 3])
    with pytest.raises(ValueError, match="no training loss"):
        plot_history({"val_loss": [1.0]})
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"fastbp\[plot\]"):
        plot_history({"loss": [1.0]})

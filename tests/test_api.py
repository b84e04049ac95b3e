"""The public Network API: shapes, copies, conversions, inference paths."""
import numpy as np
import pytest

import fastbp

import reference as R


def test_construction_and_layout():
    net = fastbp.Network([64, 128, 10], activation="relu", output="softmax",
                         loss="cross_entropy", dtype="float32", device="cpu", seed=0)
    assert net.n_params == 64 * 128 + 128 + 128 * 10 + 10
    assert [W.shape for W in net.weights] == [(64, 128), (128, 10)]
    assert [b.shape for b in net.biases] == [(128,), (10,)]
    assert all(W.dtype == np.float32 for W in net.weights)
    assert np.all(net.biases[0] == 0)
    # He init for relu: std about sqrt(2 / n_in); Glorot uniform for the softmax layer
    assert abs(net.weights[0].std() - np.sqrt(2 / 64)) < 0.01
    assert np.abs(net.weights[1]).max() <= np.sqrt(6 / 138)
    assert "Network([64, 128, 10]" in repr(net)


def test_one_activation_per_hidden_layer_and_default_loss():
    net = fastbp.Network([3, 4, 5, 2], activation=["tanh", "gelu"], output="sigmoid")
    assert net.activations == ["tanh", "gelu"] and net.loss_name == "binary_cross_entropy"
    assert fastbp.Network([3, 2], output="identity").loss_name == "mse"
    with pytest.raises(ValueError, match="one per hidden layer"):
        fastbp.Network([3, 4, 5, 2], activation=["tanh"])
    with pytest.raises(ValueError, match="does not fit output"):
        fastbp.Network([3, 2], output="relu", loss="cross_entropy")


def test_weights_are_copies_and_set_parameters_round_trips():
    net = fastbp.Network([3, 4, 2], seed=0)
    W = net.weights
    W[0][:] = 123.0
    assert not np.any(net.weights[0] == 123.0)
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))]
    bs = [rng.standard_normal(4), rng.standard_normal(2)]
    net.set_parameters([w.tolist() for w in Ws], bs)  # lists accepted
    for got, want in zip(net.weights + net.biases, Ws + bs):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(4, 2\)"):
        net.set_parameters([Ws[0], Ws[1].T], bs)


@pytest.mark.parametrize("n", [1, 5, 4096 + 77])  # more rows than one inference chunk
def test_forward_matches_reference(n):
    net = fastbp.Network([6, 9, 4], activation="softplus", dtype="float64", seed=3)
    X = np.random.default_rng(n).standard_normal((n, 6))
    _, A = R.forward(net.weights, net.biases, ["softplus", "softmax"], X)
    np.testing.assert_allclose(net.forward(X), A[-1], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(net.predict(X), A[-1].argmax(1))
    np.testing.assert_allclose(net.predict_proba(X).sum(1), 1.0, rtol=1e-12)


def test_labels_and_one_hot_are_equivalent():
    net = fastbp.Network([4, 5, 3], dtype="float64", seed=1)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    assert net.loss(X, y) == net.loss(X, R.onehot(y, 3))
    for a, b in zip(sum(net.gradients(X, y), []), sum(net.gradients(X, R.onehot(y, 3)), [])):
        np.testing.assert_array_equal(a, b)
    A = net.forward(X)
    assert net.loss(X, y) == pytest.approx(R.loss("cross_entropy", A, R.onehot(y, 3)))


def test_multilabel_and_multioutput():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 3))
    Yml = (X[:, :2] > 0).astype(int)  # two independent labels
    ml = fastbp.Network([3, 8, 2], output="sigmoid", seed=0)
    ml.fit(X, Yml, epochs=100, batch_size=8, optimizer=fastbp.Adam(lr=0.02))
    assert ml.predict(X).shape == (40, 2) and ml.accuracy(X, Yml) > 0.9
    Yreg = np.stack([X[:, 0] + X[:, 1], X[:, 2] * 0.5], 1)
    reg = fastbp.Network([3, 8, 2], activation="identity", output="identity", seed=0)
    reg.fit(X, Yreg, epochs=100, batch_size=8, optimizer=fastbp.Adam(lr=0.02))
    assert reg.predict(X).shape == (40, 2)
    assert reg.loss(X, Yreg) < 1e-3
    assert reg.loss(X, Yreg) == pytest.approx(R.loss("mse", reg.forward(X), Yreg), rel=1e-5)
    with pytest.raises(ValueError, match="predict_proba"):
        reg.predict_proba(X)
    with pytest.raises(ValueError, match="accuracy needs a classification loss"):
        reg.accuracy(X, Yreg)


def test_progress_bar_and_history(capsys):
    X, y = np.random.default_rng(0).standard_normal((50, 2)), np.arange(50) % 2
    hist = fastbp.Network([2, 3, 2], seed=0).fit(X, y, epochs=2, batch_size=7, progress=True,
                                                 validation_data=(X, y))
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "samples/s" in err
    assert len(hist) == 2 and hist["val_accuracy"][0] is not None
    assert hist.to_dict()["epoch"] == [0, 1]


def test_cuda_device_gives_clear_error_without_gpu(monkeypatch):
    from fastbp import _devices
    monkeypatch.setattr(_devices, "cuda_available", lambda: False)
    with pytest.raises(RuntimeError, match="no usable CUDA GPU"):
        fastbp.Network([2, 2], device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        fastbp.Network([2, 2], device="tpu")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_in_blocks_matches_the_predict_kernel_and_reference(dtype):
    """``Network.forward`` (predict, accuracy) runs the compiled ``forward_network`` a block
    of rows at a time, the pass a fit's validation compiles anyway: the same bits as the
    ``predict_network`` kernel, in one block and in several (the last one shorter), and the
    float64 reference's values."""
    from fastbp.kernels.cpu.network import predict_network
    rng = np.random.default_rng(4)
    sizes = [5, 7, 6, 3]
    net = fastbp.Network(sizes, activation="tanh", output="softmax", seed=0, dtype=dtype)
    X = rng.standard_normal((23, 5)).astype(dtype)
    eng = net._engine
    want = np.empty((23, 3), dtype)
    predict_network(eng.params, eng.sizes, eng.codes, X, want,
                    np.empty(23 * sum(sizes), dtype), np.empty(23 * sum(sizes[1:]), dtype),
                    None, eng._uses)
    np.testing.assert_array_equal(eng.forward(X), want)
    np.testing.assert_array_equal(eng.forward(X, rows=6), want)
    np.testing.assert_array_equal(net.forward(X), want)
    _, A = R.forward([W.astype(np.float64) for W in net.weights],
                     [b.astype(np.float64) for b in net.biases], ["tanh", "tanh", "softmax"],
                     X.astype(np.float64))
    ref = A[-1]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(want, ref, rtol=tol, atol=tol)

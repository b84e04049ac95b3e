"""Training: exact agreement with a NumPy reference loop, learning real tasks, determinism,
persistence and resumption."""
import numpy as np
import pytest

import fastbp
from fastbp import data as D

import reference as R


def _reference_fit(net, X, Y, epochs, batch, opt, lrs, orders=None):
    """Plain NumPy float64 minibatch training, in order (or each epoch's rows in
    ``orders[epoch]``), last partial batch used."""
    Ws, bs = net.weights, net.biases
    params = Ws + bs
    acts = net.activations + [net.output]
    state = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    t = 0
    n = X.shape[0]
    for epoch in range(epochs):
        lr = lrs[epoch]
        Xe, Ye = (X, Y) if orders is None else (X[orders[epoch]], Y[orders[epoch]])
        for r0 in range(0, n, batch):
            xb, yb = Xe[r0:r0 + batch], Ye[r0:r0 + batch]
            m = xb.shape[0]
            Z, A = R.forward(params[:len(Ws)], params[len(Ws):], acts, xb)
            delta = (A[-1] - yb) / m  # softmax + cross-entropy
            grads_W, grads_b = [], []
            for l in range(len(Ws) - 1, -1, -1):
                grads_W.insert(0, A[l].T @ delta)
                grads_b.insert(0, delta.sum(0))
                if l:
                    delta = (delta @ params[l].T) * R.ACT_GRAD[acts[l - 1]](Z[l - 1])
            grads = grads_W + grads_b
            t += 1
            for i, (p, g) in enumerate(zip(params, grads)):
                if isinstance(opt, fastbp.SGD):
                    params[i], state[i][0] = R.sgd(p, g, state[i][0], lr, opt.momentum,
                                                   opt.nesterov, opt.weight_decay)
                else:
                    params[i], state[i][0], state[i][1] = R.adam(
                        p, g, state[i][0], state[i][1], t, lr, opt.beta1, opt.beta2, opt.eps,
                        opt.weight_decay, opt.decoupled)
    return params


OPTIMIZERS = [
    lambda: fastbp.SGD(lr=0.1),
    lambda: fastbp.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda: fastbp.SGD(lr=0.05, momentum=0.9, nesterov=True, schedule=fastbp.StepLR(2, 0.5)),
    lambda: fastbp.Adam(lr=0.01, schedule=fastbp.CosineLR()),
    lambda: fastbp.Adam(lr=0.01, weight_decay=0.01, decoupled=True,
                        schedule=fastbp.ExponentialLR(0.9)),
    lambda: fastbp.Adam(lr=0.01, weight_decay=0.01),
]


@pytest.fixture(params=["snapshot", "checked"])
def recovery(request, monkeypatch):
    """Both divergence-recovery modes of fit (fastbp/training.py): a snapshot per chunk, or
    every update checked before it is written (forced here by a zero size threshold; the
    snapshot by a threshold no net of the tests reaches)."""
    from fastbp import training
    monkeypatch.setattr(training, "SNAPSHOT_MAX_BYTES",
                        0 if request.param == "checked" else 1 << 30)
    return request.param


# one worker: the cases of one optimizer kind share a driver (per recovery mode), which the
# two workers otherwise compiled at the same time (a checked one 17-25 s each)
@pytest.mark.xdist_group("reference_fits")
@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_fit_matches_numpy_reference(make_opt, recovery):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((23, 5)), rng.integers(0, 3, 23)  # batches of 8, 8, 7
    net = fastbp.Network([5, 7, 6, 3], activation=["tanh", "elu"], dtype="float64", seed=4)
    opt = make_opt()
    epochs = 4
    lrs = [opt.lr_at(e, epochs) for e in range(epochs)]
    want = _reference_fit(net, X, R.onehot(y, 3), epochs, 8, opt, lrs)
    net.fit(X, y, epochs=epochs, batch_size=8, optimizer=opt, shuffle=False)
    for got, w in zip(net.weights + net.biases, want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)


def test_threaded_fit_with_shuffled_parallel_gather_matches_numpy_reference():
    """A net whose products split over Numba's threads, with batches large enough for the
    parallel gather (kernels/cpu/network.py ``PARALLEL_MIN_GATHER``) except the last, short
    one; shuffled, so every row comes through the epoch's order."""
    from fastbp.kernels.cpu.network import PARALLEL_MIN_GATHER
    rng = np.random.default_rng(1)
    n, n_in, batch = 150, 520, 64  # batches of 64, 64, 22 rows
    assert batch * n_in >= PARALLEL_MIN_GATHER > (n % batch) * n_in
    X, y = rng.standard_normal((n, n_in)), rng.integers(0, 3, n)
    net = fastbp.Network([n_in, 40, 3], activation="relu", dtype="float64", seed=2)
    opt = fastbp.SGD(lr=0.05, momentum=0.9)
    epochs = 2
    shuffler = np.random.default_rng()
    shuffler.bit_generator.state = net._rng.bit_generator.state  # fit's permutations
    orders = [shuffler.permutation(n) for _ in range(epochs)]
    want = _reference_fit(net, X, R.onehot(y, 3), epochs, batch, opt, [opt.lr] * epochs,
                          orders)
    net.fit(X, y, epochs=epochs, batch_size=batch, optimizer=opt)
    assert net._engine._fit_threaded, "the products did not split: the test misses its path"
    for got, w in zip(net.weights + net.biases, want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)


def test_schedules_follow_their_formulas():
    assert [fastbp.StepLR(2, 0.5).lr(1.0, e, 6) for e in range(5)] == [1, 1, .5, .5, .25]
    assert np.allclose([fastbp.ExponentialLR(0.9).lr(2.0, e, 3) for e in range(3)],
                       [2, 1.8, 1.62])
    cos = [fastbp.CosineLR(eta_min=0.1).lr(1.0, e, 4) for e in range(5)]
    assert np.allclose(cos, [0.1 + 0.9 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(5)])


def test_digits_reaches_95_percent():
    X, y = D.load_digits()
    Xtr, Xte, ytr, yte = D.train_test_split(X / 16.0, y, 0.2, seed=0)
    net = fastbp.Network([64, 128, 10], activation="relu", seed=0)
    hist = net.fit(Xtr, ytr, epochs=20, batch_size=32,
                   optimizer=fastbp.SGD(lr=0.1, momentum=0.9), validation_data=(Xte, yte))
    acc = net.accuracy(Xte, yte)
    assert acc >= 0.95, acc
    assert hist["val_accuracy"][-1] == pytest.approx(acc)
    assert hist["loss"][-1] < hist["loss"][0] / 10


def test_learns_xor():
    X, y = D.xor(400, noise=0.05, seed=1)
    net = fastbp.Network([2, 8, 1], activation="tanh", output="sigmoid", seed=3)
    net.fit(X, y, epochs=60, batch_size=16, optimizer=fastbp.Adam(lr=0.03))
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(net.predict(corners), [0, 1, 1, 0])
    assert net.accuracy(X, y) > 0.98


def test_learns_sine_regression():
    X, y = D.sine(800, noise=0.0, seed=2)
    net = fastbp.Network([1, 32, 32, 1], activation="tanh", output="identity", seed=0)
    net.fit(X, y, epochs=150, batch_size=32, optimizer=fastbp.Adam(lr=0.01))
    grid = np.linspace(-3, 3, 50).reshape(-1, 1)
    rmse = np.sqrt(np.mean((net.predict(grid) - np.sin(grid[:, 0])) ** 2))
    assert rmse < 0.05, rmse


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_weights(dtype):
    X, y = D.spirals(300, seed=0)
    runs = []
    for seed in (7, 7, 8):
        net = fastbp.Network([2, 16, 3], activation="relu", dtype=dtype, seed=seed)
        net.fit(X, y, epochs=3, batch_size=10, optimizer=fastbp.SGD(lr=0.1, momentum=0.9))
        runs.append(net.get_flat_parameters())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_shuffle_changes_order_but_visits_every_sample():
    """With lr tiny and one batch per sample, an epoch's summed loss does not depend on order."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 3)), rng.integers(0, 2, 30)
    a = fastbp.Network([3, 4, 2], seed=1)
    b = fastbp.Network([3, 4, 2], seed=1)
    ha = a.fit(X, y, epochs=1, batch_size=1, optimizer=fastbp.SGD(lr=1e-12), shuffle=True)
    hb = b.fit(X, y, epochs=1, batch_size=1, optimizer=fastbp.SGD(lr=1e-12), shuffle=False)
    assert ha["loss"][0] == pytest.approx(hb["loss"][0], rel=1e-5)
    assert ha["loss"][0] == pytest.approx(a.loss(X, y), rel=1e-5)


def test_save_load_round_trip_is_exact(tmp_path):
    X, y = D.spirals(200, seed=1)
    net = fastbp.Network([2, 9, 5, 3], activation=["gelu", "leaky_relu"], seed=0)
    net.fit(X, y, epochs=2, batch_size=16, optimizer=fastbp.Adam(lr=0.01))
    path = tmp_path / "model.npz"
    net.save(path)
    back = fastbp.load(path)
    for a, b in zip(net.weights + net.biases, back.weights + back.biases):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(net.forward(X), back.forward(X))
    assert (back.layer_sizes, back.activations, back.output, back.loss_name) == \
        (net.layer_sizes, net.activations, net.output, net.loss_name)


@pytest.mark.parametrize("make_opt", [lambda: fastbp.SGD(lr=0.05, momentum=0.9,
                                                          schedule="cosine"),
                                      lambda: fastbp.Adam(lr=0.01, schedule=fastbp.StepLR(2))])
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, make_opt):
    X, y = D.spirals(300, seed=2)
    straight = fastbp.Network([2, 12, 3], seed=5)
    straight.fit(X, y, epochs=6, batch_size=32, optimizer=make_opt())

    def interrupt(net, record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    ckpt = tmp_path / "run.npz"
    first = fastbp.Network([2, 12, 3], seed=5)
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, y, epochs=6, batch_size=32, optimizer=make_opt(), checkpoint=ckpt,
                  callbacks=[interrupt])
    assert first.epochs_done == 3  # consistent: the last completed epoch
    resumed = fastbp.load(ckpt)
    assert resumed.epochs_done == 3
    resumed.fit(X, y, epochs=6, batch_size=32, resume=True)
    np.testing.assert_array_equal(straight.get_flat_parameters(), resumed.get_flat_parameters())
    first.fit(X, y, epochs=6, batch_size=32, resume=True)  # the interrupted object goes on too
    np.testing.assert_array_equal(straight.get_flat_parameters(), first.get_flat_parameters())


@pytest.mark.parametrize("make_opt, small, big", [
    (lambda: fastbp.SGD(lr=1e160), 1e-160, 1e150),
    (lambda: fastbp.SGD(lr=1e160, momentum=0.9, nesterov=True), 1e-160, 1e150),
    (lambda: fastbp.Adam(lr=0.1), 1.0, 1e160),  # g * g overflows Adam's second moment
])
def test_checked_updates_keep_the_parameters_before_the_overflowing_update(
        make_opt, small, big, monkeypatch):
    """With every update checked before it is written (no snapshot), divergence in the middle
    of a chunk leaves exactly the parameters after the last finite update. Batch 2's inputs
    are huge: its loss is finite but its update would overflow. Compared with a float64
    NumPy loop over batch 1 alone."""
    from fastbp import training
    monkeypatch.setattr(training, "SNAPSHOT_MAX_BYTES", 0)
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((24, 3)), rng.integers(0, 3, 24)
    X[:8] *= small
    X[8:] *= big
    net = fastbp.Network([3, 3], dtype="float64", seed=2)
    opt = make_opt()
    want = _reference_fit(net, X[:8], R.onehot(y[:8], 3), 1, 8, opt, [opt.lr])
    with pytest.raises(fastbp.DivergenceError,
                       match="epoch 1, batch 2 would have made the parameters"):
        net.fit(X, y, epochs=1, batch_size=8, optimizer=opt, shuffle=False)
    for got, w in zip(net.weights + net.biases, want):
        np.testing.assert_allclose(got, w, rtol=1e-12)
    assert np.isfinite(net._opt_state).all()
    assert int(net._opt_step[0]) == (1 if isinstance(opt, fastbp.Adam) else 0)


def test_divergence_keeps_last_finite_parameters(recovery):
    X, y = D.sine(200, seed=0)
    net = fastbp.Network([1, 16, 1], activation="relu", output="identity", seed=0)
    with pytest.raises(fastbp.DivergenceError, match="lr=1e\\+30"):
        net.fit(X * 1e3, y, epochs=5, batch_size=8, optimizer=fastbp.SGD(lr=1e30))
    assert np.isfinite(net.get_flat_parameters()).all()
    net.predict(X)  # still usable
    with pytest.warns(RuntimeWarning, match="diverged"):
        net.fit(X * 1e3, y, epochs=5, batch_size=8, optimizer=fastbp.SGD(lr=1e30),
                on_divergence="stop")
    assert np.isfinite(net.get_flat_parameters()).all()


def test_early_stopping_restores_best():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)  # noise: val loss rises
    Xv, yv = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
    net = fastbp.Network([4, 64, 3], seed=0)
    hist = net.fit(X, y, epochs=200, batch_size=8, optimizer=fastbp.SGD(lr=0.1, momentum=0.9),
                   validation_data=(Xv, yv), early_stopping=3)
    assert hist.stopped_early and len(hist) < 200
    assert net.loss(Xv, yv) == pytest.approx(min(hist["val_loss"]), rel=1e-5)


def test_callback_can_stop_and_sees_records():
    seen = []

    def cb(net, record):
        seen.append(record["epoch"])
        return record["epoch"] == 2

    X, y = D.xor(50)
    hist = fastbp.Network([2, 4, 2], seed=0).fit(X, y, epochs=10, callbacks=[cb])
    assert seen == [0, 1, 2] and len(hist) == 3
    assert set(hist.keys()) >= {"epoch", "loss", "seconds", "samples_per_s", "lr"}

"""Network(..., device="cuda") against the float64 NumPy reference: forward, gradients, the
validation pass, short fits through both CUDA training paths (fused single-block and layered);
against the CPU engine: divergence handling and save/load/resume across devices; and the error
without CUDA. (The reference, not the CPU engine, is what the GPU results are held to: the CPU
engine is itself tested against it, and each CPU network compiled here only for comparison
cost the cold suite several seconds.)"""
import numpy as np
import pytest
from numba import cuda

import fastbp
from fastbp.kernels.cuda import config
from fastbp.optimizers import optimizer_from_config
from fastbp.training import DivergenceError

from . import reference as R
from .reference import tol

NETS = [  # (sizes, hidden activation, output, loss)
    ([5, 7, 3], "tanh", "softmax", None),
    ([4, 1, 6, 2], "gelu", "sigmoid", None),
    ([3, 9, 1], "elu", "identity", "mse"),
]


def data(sizes, loss, n=23, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    if loss == "mse":
        return X, rng.normal(size=n if sizes[-1] == 1 else (n, sizes[-1]))
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (n, sizes[-1]))
    return X, rng.integers(0, sizes[-1], n)


def pair(sizes, act, out, loss, dtype, seed=1):
    kw = dict(activation=act, output=out, loss=loss, dtype=dtype, seed=seed)
    return fastbp.Network(sizes, **kw), fastbp.Network(sizes, device="cuda", **kw)


def close(got, want, dtype):
    rtol, atol = tol(dtype)
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol,
                               atol=atol * max(1.0, np.abs(want).max()))


def _codes(net):
    return [R.__dict__[a.upper()] for a in net.activations + [net.output]]


LOSS_CODE = {"mse": R.MSE, "binary_cross_entropy": R.BCE, "cross_entropy": R.CE}


def reference_forward(net, X):
    """The float64 reference's output activations for ``net``'s current parameters."""
    A = np.asarray(X, np.float64)
    for W, b, c in zip(net.weights, net.biases, _codes(net)):
        A = R.act(A @ W.astype(np.float64) + b.astype(np.float64), c)
    return A


def reference_grads(net, X, Y):
    """(mean loss, weight gradients, bias gradients) of the float64 reference."""
    return R.network_grads([w.astype(np.float64) for w in net.weights],
                           [b.astype(np.float64) for b in net.biases], _codes(net),
                           LOSS_CODE[net.loss_name], np.asarray(X, np.float64),
                           np.asarray(Y, np.float64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", NETS)
def test_forward_and_gradients_match_reference(net, dtype):
    sizes, act, out, loss = net
    gpu = fastbp.Network(sizes, activation=act, output=out, loss=loss, dtype=dtype,
                         device="cuda", seed=1)
    assert gpu.device == "cuda" and gpu._engine.device == "cuda:0"
    X, y = data(sizes, gpu.loss_name)
    Xc = X.astype(dtype)  # the reference sees the inputs as the network does
    Y = gpu._Y(y, X.shape[0]).astype(np.float64)
    ref_loss, rW, rb = reference_grads(gpu, Xc, Y)
    close(gpu.forward(X), reference_forward(gpu, Xc), dtype)
    close(gpu.loss(X, y), ref_loss, dtype)
    gW, gb = gpu.gradients(X, y)
    for g, r in zip(gW + gb, rW + rb):
        close(g, r, dtype)


@pytest.mark.parametrize("net", NETS)
def test_evaluate_matches_reference(net):
    """One forward pass gives the validation loss and outputs."""
    sizes, act, out, loss = net
    gpu = fastbp.Network(sizes, activation=act, output=out, loss=loss, dtype="float64",
                         device="cuda", seed=1)
    X, y = data(sizes, gpu.loss_name)
    Xc, Y = gpu._X(X), gpu._Y(y, X.shape[0])
    gl, ga = gpu._engine.evaluate(Xc, Y)
    close(ga, reference_forward(gpu, X), "float64")
    close(gl, reference_grads(gpu, X, Y)[0], "float64")


FITS = [("sgd", {}), (fastbp.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3), {}),
        (fastbp.Adam(lr=1e-2, weight_decay=1e-2, decoupled=True), {})]


def reference_fit(net, X, Y, epochs, batch, opt):
    """Plain float64 minibatch training from ``net``'s current parameters, batches in order:
    (each epoch's mean loss before its steps, the flat parameters, the flat optimizer state
    (k, n_params), the step count). Flat as the engines lay them out: every weight matrix row
    by row, then every bias."""
    L = len(net.weights)
    params = [w.astype(np.float64) for w in net.weights] + [b.astype(np.float64)
                                                             for b in net.biases]
    state = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    codes, loss_code = _codes(net), LOSS_CODE[net.loss_name]
    adam = isinstance(opt, fastbp.Adam)
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    n, t, losses = X.shape[0], 0, []
    for _ in range(epochs):
        total = 0.0
        for r0 in range(0, n, batch):
            xb, yb = X[r0:r0 + batch], Y[r0:r0 + batch]
            loss, dW, db = R.network_grads(params[:L], params[L:], codes, loss_code, xb, yb)
            total += loss * xb.shape[0]
            t += 1
            for i, (p, g) in enumerate(zip(params, dW + db)):
                if adam:
                    params[i], state[i][0], state[i][1] = R.adam(
                        p, g, state[i][0], state[i][1], t, opt.lr, opt.beta1, opt.beta2,
                        opt.eps, opt.weight_decay, opt.decoupled)
                else:
                    params[i], state[i][0] = R.sgd(p, g, state[i][0], opt.lr, opt.momentum,
                                                   opt.nesterov, opt.weight_decay)
        losses.append(total / n)
    flat = np.concatenate([p.ravel() for p in params])
    flat_state = np.array([np.concatenate([s[k].ravel() for s in state]) for k in range(2)])
    return losses, flat, flat_state, t


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "layered"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_short_fit_matches_reference(dtype, fused, monkeypatch):
    """Two epochs of three small nets (an SGD, a Nesterov momentum with weight decay and an
    AdamW fit), batches of 8 over 23 rows (a last batch of 7), through both CUDA training
    paths: the reference's losses, parameters and optimizer state."""
    monkeypatch.setattr(config, "FUSED", fused)
    for i, (sizes, act, out, loss) in enumerate(NETS):
        gpu = fastbp.Network(sizes, activation=act, output=out, loss=loss, dtype=dtype,
                             device="cuda", seed=i)
        X, y = data(sizes, gpu.loss_name, seed=i)
        opt = _fresh(FITS[i][0])
        ref = fastbp.SGD() if opt == "sgd" else opt
        want_loss, want, want_state, steps = reference_fit(
            gpu, gpu._X(X), gpu._Y(y, X.shape[0]), 2, 8, ref)
        hg = gpu.fit(X, y, epochs=2, batch_size=8, optimizer=opt, shuffle=False)
        assert gpu._engine._fused is fused
        close([r["loss"] for r in hg], want_loss, dtype)
        close(gpu.get_flat_parameters(), want, dtype)
        assert int(gpu._opt_step[0]) == (steps if isinstance(ref, fastbp.Adam) else 0)
        k = gpu._opt_state.shape[0] if gpu._opt_state is not None else 0
        assert k == (2 if isinstance(ref, fastbp.Adam) else 1 if ref.momentum else 0)
        if k:
            close(gpu._opt_state.copy_to_host(), want_state[:k], dtype)


def _fresh(opt):
    if isinstance(opt, str):
        return opt
    return optimizer_from_config(opt.get_config())  # an independent copy per network


def test_training_is_deterministic():
    runs = []
    for _ in range(2):
        net = fastbp.Network([4, 6, 3], dtype="float32", device="cuda", seed=3)
        X, y = data([4, 6, 3], "cross_entropy", n=13)
        net.fit(X, y, epochs=1, batch_size=5, optimizer="adam")
        runs.append(net.get_flat_parameters())
    assert np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "layered"])
def test_divergence_keeps_finite_parameters(fused, monkeypatch):
    monkeypatch.setattr(config, "FUSED", fused)
    X, y = data([3, 4, 1], "mse", n=12)
    X = X * 1e30
    nets = pair([3, 4, 1], "relu", "identity", "mse", "float64", seed=2)
    results = []
    for net in nets:
        before = net.get_flat_parameters()
        with pytest.raises(DivergenceError):
            net.fit(X, y * 1e30, epochs=1, batch_size=4, optimizer=fastbp.SGD(lr=1e10))
        after = net.get_flat_parameters()
        assert np.isfinite(after).all()
        results.append((before, after))
    close(results[1][1], results[0][1], "float64")


def test_save_on_gpu_load_on_cpu_and_back(tmp_path):
    X, y = data([5, 7, 3], "cross_entropy")
    gpu = fastbp.Network([5, 7, 3], activation="relu", device="cuda", dtype="float64", seed=4)
    gpu.fit(X, y, epochs=1, batch_size=8, optimizer="adam")
    path = tmp_path / "net.npz"
    gpu.save(path)
    cpu = fastbp.load(path)
    assert cpu.device == "cpu"
    np.testing.assert_array_equal(cpu.get_flat_parameters(), gpu.get_flat_parameters())
    close(cpu.forward(X), gpu.forward(X), "float64")
    np.testing.assert_array_equal(cpu._opt_state, gpu._opt_state.copy_to_host())
    back = fastbp.load(path, device="cuda")
    np.testing.assert_array_equal(back._opt_state.copy_to_host(), cpu._opt_state)
    # resuming on either device continues identically
    cpu.fit(X, y, epochs=2, batch_size=8, resume=True)
    back.fit(X, y, epochs=2, batch_size=8, resume=True)
    close(back.get_flat_parameters(), cpu.get_flat_parameters(), "float64")
    moved = cpu.to("cuda")
    assert moved.device == "cuda"
    np.testing.assert_array_equal(moved.get_flat_parameters(), cpu.get_flat_parameters())
    np.testing.assert_array_equal(moved.to("cpu").weights[0], cpu.weights[0])


def test_set_parameters_accepts_device_arrays():
    net = fastbp.Network([2, 3], output="identity", device="cuda", dtype="float64")
    W, b = np.arange(6.0).reshape(2, 3), np.array([1.0, -1.0, 0.5])
    net.set_parameters([cuda.to_device(W)], [cuda.to_device(b)])
    np.testing.assert_array_equal(net.weights[0], W)
    close(net.forward([[1.0, 2.0]]), [[1 * 0 + 2 * 3 + 1, 1 + 2 * 4 - 1, 2 + 2 * 5 + 0.5]],
          "float64")


def test_begin_fit_uses_device_dataset_in_place():
    net = fastbp.Network([3, 2], output="softmax", device="cuda", dtype="float32", seed=0)
    X = cuda.to_device(np.ones((4, 3), np.float32))
    Y = cuda.to_device(np.eye(2, dtype=np.float32)[[0, 1, 0, 1]])
    eng = net._engine
    eng.begin_fit(X, Y, 2)
    assert eng._X is X and eng._Y is Y
    state = eng.new_state(0)
    step = np.zeros(1, np.int64)
    opt = fastbp.SGD(lr=0.1)
    loss, ran, status = eng.run_batches(np.arange(4), 0, 2, opt.code, opt.hyper(0, 1), state,
                                        step)
    eng.end_fit()
    assert (ran, status) == (2, 0) and np.isfinite(loss) and loss > 0


def test_bad_device_index():
    with pytest.raises(ValueError, match="does not exist"):
        fastbp.Network([2, 2], device="cuda:7")


def test_cuda_unavailable_gives_clear_error(monkeypatch):
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no usable CUDA GPU"):
        fastbp.Network([2, 2], device="cuda")
    assert fastbp.Network([2, 2]).device == "cpu"

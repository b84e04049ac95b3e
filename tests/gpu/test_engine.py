"""Network(..., device="cuda") against the CPU engine and the float64 reference: forward,
gradients, short fits through both CUDA training paths (fused single-block and layered),
divergence handling, save/load across devices, and the error without CUDA."""
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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", NETS)
def test_forward_and_gradients_match_cpu_and_reference(net, dtype):
    sizes, act, out, loss = net
    cpu, gpu = pair(sizes, act, out, loss, dtype)
    assert gpu.device == "cuda" and gpu._engine.device == "cuda:0"
    X, y = data(sizes, gpu.loss_name)
    close(gpu.forward(X), cpu.forward(X), dtype)
    close(gpu.loss(X, y), cpu.loss(X, y), dtype)
    gW, gb = gpu.gradients(X, y)
    cW, cb = cpu.gradients(X, y)
    codes = [R.__dict__[a.upper()] for a in gpu.activations + [gpu.output]]
    loss_code = {"mse": R.MSE, "binary_cross_entropy": R.BCE, "cross_entropy": R.CE}
    Y = gpu._Y(y, X.shape[0]).astype(np.float64)
    Ws = [w.astype(np.float64) for w in gpu.weights]
    bs = [b.astype(np.float64) for b in gpu.biases]
    ref_loss, rW, rb = R.network_grads(Ws, bs, codes, loss_code[gpu.loss_name],
                                       X.astype(dtype), Y)
    close(gpu.loss(X, y), ref_loss, dtype)
    for g, c, r in zip(gW + gb, cW + cb, rW + rb):
        close(g, c, dtype)
        close(g, r, dtype)


@pytest.mark.parametrize("net", NETS)
def test_evaluate_matches_cpu(net):
    """One forward pass gives the validation loss and outputs on both engines alike."""
    sizes, act, out, loss = net
    cpu, gpu = pair(sizes, act, out, loss, "float64")
    X, y = data(sizes, gpu.loss_name)
    Xc, Y = gpu._X(X), gpu._Y(y, X.shape[0])
    (gl, ga), (cl, ca) = gpu._engine.evaluate(Xc, Y), cpu._engine.evaluate(Xc, Y)
    close(gl, cl, "float64")
    close(ga, ca, "float64")
    close(ga, cpu.forward(X), "float64")
    close(cl, cpu.loss(X, y), "float64")


FITS = [("sgd", {}), (fastbp.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3), {}),
        (fastbp.Adam(lr=1e-2, weight_decay=1e-2, decoupled=True), {})]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "layered"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_short_fit_matches_cpu(dtype, fused, monkeypatch):
    monkeypatch.setattr(config, "FUSED", fused)
    for i, (sizes, act, out, loss) in enumerate(NETS):
        opt_kind = FITS[i][0]
        cpu, gpu = pair(sizes, act, out, loss, dtype, seed=i)
        X, y = data(sizes, gpu.loss_name, seed=i)
        opts = [_fresh(opt_kind), _fresh(opt_kind)]
        hc = cpu.fit(X, y, epochs=2, batch_size=8, optimizer=opts[0])
        hg = gpu.fit(X, y, epochs=2, batch_size=8, optimizer=opts[1])
        assert gpu._engine._fused is fused
        close([r["loss"] for r in hg], [r["loss"] for r in hc], dtype)
        close(gpu.get_flat_parameters(), cpu.get_flat_parameters(), dtype)
        assert int(gpu._opt_step[0]) == int(cpu._opt_step[0])
        if gpu._opt_state is not None and gpu._opt_state.shape[0]:
            close(gpu._opt_state.copy_to_host(), cpu._opt_state, dtype)


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

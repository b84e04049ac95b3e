"""The magnitude bounds behind checked training (kernels/cpu/bounds.py): never a step proven
finite that is not, and bounds that really bound what the update writes."""
import zlib

import numpy as np
import pytest

from fastbp.kernels.activations import ADAM, SGD
from fastbp.kernels.cpu import network as K
from fastbp.kernels.cpu.bounds import max_abs, state_bounds, step_bounds

DTYPES = [np.float32, np.float64]
OPTS = ["sgd", "momentum", "nesterov", "adam", "adamw"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_abs_against_numpy(dtype):
    rng = np.random.default_rng(3)
    for n in (1, 15, 16, 17, 1000):
        a = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30)).astype(dtype)
        assert max_abs(a) == float(np.abs(a).max())
        k = int(rng.integers(n))
        for bad in (np.nan, -np.nan, np.inf, -np.inf):
            b = a.copy()
            b[k] = bad
            assert max_abs(b) == np.inf
        b = a.copy()
        b[k] = -np.finfo(dtype).max
        assert max_abs(b) == float(np.finfo(dtype).max)
    assert max_abs(np.zeros(0, dtype)) == 0.0


def _hyper(opt, lr, wd, bias_decay=1.0):
    hyper = np.zeros(K.N_HYPER)
    hyper[K.LR] = lr
    hyper[K.MOMENTUM] = 0.0 if opt == "sgd" else 0.9
    hyper[K.NESTEROV] = opt == "nesterov"
    hyper[K.WEIGHT_DECAY] = wd
    hyper[K.BIAS_DECAY] = bias_decay
    hyper[K.BETA1], hyper[K.BETA2], hyper[K.EPS] = 0.9, 0.999, 1e-8
    hyper[K.DECOUPLED] = opt == "adamw"
    return hyper


def _bounds_of(p, g, state, opt, hyper, step, nw):
    """``train_batches``' bound for the next ``apply_update``."""
    P, S0, S1 = state_bounds(p, state)
    return K._proven_finite(p, max_abs(g), ADAM if opt.startswith("adam") else SGD, hyper,
                            step, P, S0, S1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", OPTS)
def test_proven_steps_are_finite_and_bounded(dtype, opt):
    """Random magnitudes from tiny to near the largest float (parameters, gradients, state,
    learning rate, decay): whenever the bounds prove a step finite, ``apply_update`` leaves
    every parameter and state entry finite, and no larger than the bounds carried forward;
    and where the exact check refuses a step, the bounds never proved it."""
    rng = np.random.default_rng(zlib.crc32(f"{dtype}{opt}".encode()))
    code = ADAM if opt.startswith("adam") else SGD
    big = np.log10(np.finfo(dtype).max)
    proven_count = refused = 0
    for trial in range(300):
        n, nw = 64, 50
        # half the trials near the largest float, where steps overflow
        low = -3 if trial % 2 else big - 6
        scale = 10.0 ** rng.uniform(low, big, size=3)
        with np.errstate(over="ignore"):
            p = (rng.standard_normal(n) * scale[0]).astype(dtype)
            g = (rng.standard_normal(n) * scale[1]).astype(dtype)
            state = np.abs(rng.standard_normal((2, n)) * scale[2]).astype(dtype)
        if code == SGD:
            state[0] *= np.sign(rng.standard_normal(n)).astype(dtype)  # velocities: any sign
        elif trial % 3 == 0:  # Adam where v is 0 (a unit whose gradient was always 0 until
            state[1] = 0      # now): the step is m / eps, the bound's worst case
            g[: n // 2] = 0
        hyper = _hyper(opt, 10.0 ** rng.uniform(-4, 3), 10.0 ** rng.uniform(-6, 1),
                       rng.choice([0.0, 1.0]))
        step = np.array([int(rng.integers(0, 1000))], np.int64)
        if not (np.isfinite(p).all() and np.isfinite(g).all() and np.isfinite(state).all()):
            continue  # a draw past the largest float: fit never starts from one
        proven, P2, S02, S12 = _bounds_of(p, g, state, opt, hyper, step, nw)
        exact = K.update_is_finite(p, g, state, code, hyper, step, nw)
        if proven:
            assert exact, "the bounds proved a step the exact check refuses"
            proven_count += 1
            with np.errstate(all="ignore"):
                K.apply_update(p, g, state, code, hyper, step, nw)
            rows = 2 if code == ADAM else (1 if opt != "sgd" else 0)
            assert np.isfinite(p).all() and np.isfinite(state[:rows]).all()
            # what was written stays inside the bounds carried forward (tiny rounding slack)
            assert float(np.abs(p).max()) <= P2 * (1 + 1e-5)
            if rows:
                assert float(np.abs(state[0]).max()) <= S02 * (1 + 1e-5)
            if rows == 2:
                assert float(np.abs(state[1]).max()) <= S12 * (1 + 1e-5)
        elif not exact:
            refused += 1
    # the random magnitudes exercise both outcomes
    assert proven_count > 30 and refused > 10


@pytest.mark.parametrize("opt", OPTS)
def test_bounds_carried_over_many_steps_stay_usable(opt):
    """Ordinary training magnitudes: the bounds carried forward step after step (as
    ``train_batches`` does, never re-measured) keep proving steps finite for thousands of
    steps and keep bounding the parameters. (Not Adam with coupled weight decay: its bound
    compounds by about ``lr * decay / eps`` a step, see ``step_bounds``; train_batches then
    falls back to the exact check.)"""
    rng = np.random.default_rng(5)
    code = ADAM if opt.startswith("adam") else SGD
    n, nw = 256, 200
    p = rng.standard_normal(n).astype(np.float32)
    state = np.zeros((2, n), np.float32)
    hyper = _hyper(opt, 0.01, 0.0 if opt == "adam" else 1e-4)
    step = np.zeros(1, np.int64)
    P, S0, S1 = state_bounds(p, state)
    for _ in range(3000):
        g = rng.standard_normal(n).astype(np.float32)
        proven, P, S0, S1 = K._proven_finite(p, max_abs(g), code, hyper, step, P, S0, S1)
        assert proven
        K.apply_update(p, g, state, code, hyper, step, nw)
        assert float(np.abs(p).max()) <= P


def test_step_bounds_refuse_what_they_cannot_bound():
    """A non-finite gradient, eps <= 0 for Adam, NaN hyper-parameters: never proven (the
    exact check decides)."""
    p = np.ones(4, np.float32)
    args = dict(opt=SGD, lr=0.1, momentum=0.9, nesterov=False, decay_w=0.0, decay_b=0.0,
                beta1=0.9, beta2=0.999, eps=1e-8, decoupled=False, t=1)

    def proven(P=1.0, S0=1.0, S1=1.0, G=1.0, **kw):
        a = dict(args, **kw)
        return step_bounds(p, P, S0, S1, G, a["opt"], a["lr"], a["momentum"], a["nesterov"],
                           a["decay_w"], a["decay_b"], a["beta1"], a["beta2"], a["eps"],
                           a["decoupled"], a["t"])[0]

    assert proven()
    assert not proven(G=np.inf)
    assert not proven(G=np.nan)
    assert not proven(lr=np.nan)
    assert not proven(P=np.inf)
    assert not proven(G=3e37)  # past float32's max / 16 (2.1e37)
    assert proven(G=1e36)
    assert proven(opt=ADAM)
    assert not proven(opt=ADAM, eps=0.0)
    assert not proven(opt=ADAM, G=1e19)  # g * g overflows float32


def _train(net, opt, X, Y, batch, checked):
    """``train_batches`` over every batch of (X, Y) in order, as fit's engine runs it."""
    eng = net._engine
    eng.begin_fit(X, Y, batch, checked)
    order = np.arange(X.shape[0], dtype=np.int64)
    try:
        return eng.run_batches(order, 0, -(-X.shape[0] // batch), opt.code, opt.hyper(0, 1),
                               net._opt_state, net._opt_step)
    finally:
        eng.end_fit()


@pytest.mark.parametrize("case", ["adam_coupled_decay", "huge_velocity"])
def test_checked_training_falls_back_and_matches_unchecked(case):
    """Checked training takes the same steps as unchecked training wherever no step
    overflows, through each of its paths: bounds carried until they grow too loose, then
    measured again (Adam with coupled weight decay, whose bound compounds within tens of
    steps), and bounds that prove nothing even when just measured, so the exact check takes
    over (a velocity near the largest float32: the sum of the maxima passes the limit, the
    real values do not). Same bits, status 0."""
    import fastbp
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60 * 4, 6)).astype(np.float32)
    y = rng.integers(0, 3, X.shape[0])
    Y = np.eye(3, dtype=np.float32)[y]
    results = []
    for checked in (False, True):
        net = fastbp.Network([6, 5, 3], seed=1)
        if case == "adam_coupled_decay":
            opt = fastbp.Adam(lr=0.01, weight_decay=0.01)
        else:
            opt = fastbp.SGD(lr=1e-30, momentum=0.9)
        net.fit(X[:4], y[:4], epochs=0, optimizer=opt)  # creates the optimizer state
        if case == "huge_velocity":
            net._opt_state[0, 0] = 2.5e37  # 0.9 of it still passes float32's max / 16
        status = _train(net, opt, X, Y, 4, checked)
        results.append((status, net.get_flat_parameters(), net._opt_state.copy(),
                        net._opt_step.copy()))
    (s0, p0, st0, k0), (s1, p1, st1, k1) = results
    assert s0 == s1 and s0[1:] == (60, 0)
    np.testing.assert_array_equal(p0, p1)
    np.testing.assert_array_equal(st0, st1)
    np.testing.assert_array_equal(k0, k1)
    assert np.isfinite(p1).all() and np.isfinite(st1).all()

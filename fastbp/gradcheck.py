"""Central-difference gradient check of a network's backpropagation."""
import numpy as np

from ._validation import check_float, check_int


def gradient_check(net, X, y, eps=1e-5, max_params=None, seed=0, return_arrays=False):
    """Largest relative error between backprop gradients and central differences.

    The numeric gradient is the 4th-order central difference
    ``(-L(p+2h) + 8 L(p+h) - 8 L(p-h) + L(p-2h)) / (12 h)`` of the mean loss, whose
    truncation error (~h^4) and round-off (~1e-16 L / h) both stay far below 1e-6.

    The check runs on a float64 CPU copy of ``net`` (so float32 networks are checked in
    exact arithmetic of the same model). Each parameter's error is
    ``|numeric - backprop| / max(|numeric|, |backprop|, 1e-3 * max|backprop|, 1e-12)``,
    i.e. relative, with a floor so that entries that are tiny by comparison do not count
    round-off as error.

    Parameters
    ----------
    net : Network
        The network to check (left untouched).
    X, y : array_like
        Data for the mean loss.
    eps : float
        Finite-difference step h (> 0).
    max_params : int or None
        Check a random subset of this many parameters (all when None).
    seed : int
        Seeds the subset choice.
    return_arrays : bool
        Also return the numeric and backprop gradients of the checked parameters.

    Returns
    -------
    float, or (float, ndarray, ndarray) with ``return_arrays``
    """
    from .io import network_from_state, network_state
    eps = check_float("eps", eps, 0.0, min_inclusive=False)
    header, arrays = network_state(net, include_optimizer=False)
    header = dict(header, dtype="float64")
    arrays = {"params": arrays["params"].astype(np.float64)}
    ref = network_from_state((header, arrays), device="cpu")
    Xc = ref._X(X)
    Y = ref._Y(y, Xc.shape[0])
    engine = ref._engine
    _, backprop = engine.loss_and_gradients(Xc, Y)
    idx = np.arange(ref.n_params)
    if max_params is not None:
        max_params = check_int("max_params", max_params, 1)
        if max_params < ref.n_params:
            idx = np.sort(np.random.default_rng(seed).choice(ref.n_params, max_params, False))
    p = engine.params
    numeric = np.empty(len(idx))
    for k, i in enumerate(idx):
        old = p[i]
        f = []
        for step in (2 * eps, eps, -eps, -2 * eps):
            p[i] = old + step
            f.append(engine.loss_and_gradients(Xc, Y, False)[0])
        p[i] = old
        numeric[k] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * eps)
    analytic = backprop[idx]
    scale = np.maximum.reduce([np.abs(numeric), np.abs(analytic),
                               np.full(len(idx), 1e-3 * np.abs(backprop).max()),
                               np.full(len(idx), 1e-12)])
    err = float((np.abs(numeric - analytic) / scale).max())
    return (err, numeric, analytic) if return_arrays else err

"""In-place optimizer updates with PyTorch's formulas (torch.optim.SGD, Adam, AdamW).

Every CPU kernel is compiled with ``error_model="numpy"``: a float division then yields inf or
nan as in NumPy instead of checking for ZeroDivisionError, so loops with a division carry no
per-element branch and LLVM vectorises them (Adam's update, float32: 2.3 -> 0.15 ns per
parameter, measured in a compiled loop over 9,610 and 235,146 parameters).

The ``*_range`` kernels are serial and update ``[start, stop)``; the training driver calls
them directly because its own loops are serial (README, "Threading"). ``sgd_update``/``adam_update`` are the
standalone versions: ``parallel=True``, each thread takes its own contiguous chunk.
"""
import math

from numba import njit, prange
from numba.extending import overload

from .fpmode import fp_adopt, fp_mode


def _as_dtype_of(a, x):
    """``x`` converted to the dtype of array ``a`` (usable inside @njit code)."""
    return a.dtype.type(x)


@overload(_as_dtype_of)
def _as_dtype_of_impl(a, x):
    dtype = a.dtype

    def impl(a, x):
        return dtype(x)
    return impl


_CHUNK = 1 << 16  # below this a thread pool costs more than it saves


@njit(cache=True, error_model="numpy")
def sgd_range(param, grad, velocity, lr, momentum, nesterov, weight_decay, start, stop):
    """torch.optim.SGD (dampening 0) on ``param[start:stop]``.

    g = grad + weight_decay * p; with momentum: v = momentum * v + g, then g = v, or
    g = g + momentum * v when nesterov; finally p -= lr * g. ``velocity`` is ignored when
    momentum is 0 (any array then). A velocity of zeros reproduces torch's first step.

    Parameters
    ----------
    param : ndarray (n,)
        Parameters, updated in place.
    grad : ndarray (n,)
        Gradients.
    velocity : ndarray (n,)
        Momentum buffer, updated in place (ignored when momentum is 0).
    lr : float
        Learning rate.
    momentum : float
        Momentum factor.
    nesterov : bool
        Nesterov momentum.
    weight_decay : float
        L2 penalty added to the gradient.
    start, stop : int
        The half-open index range to update.
    """
    # scalars in the arrays' dtype, as in adam_range: float32 stays float32 (as in torch)
    # instead of every element going through float64 (batch-1 digits step: 2.1 us -> see
    # docs/performance.md)
    plain = momentum == 0.0
    lr = _as_dtype_of(param, lr)
    momentum = _as_dtype_of(param, momentum)
    weight_decay = _as_dtype_of(param, weight_decay)
    # Sliced views, indexed from 0: with ``range(start, stop)`` Numba's negative-index
    # wraparound made every access a gather/scatter (8.4M float32: 4.2 -> 2.3 ms).
    p, g = param[start:stop], grad[start:stop]
    if plain:
        for k in range(p.shape[0]):
            p[k] = _sgd_plain(p[k], g[k], lr, weight_decay)
    elif nesterov:
        v = velocity[start:stop]
        for k in range(p.shape[0]):
            p[k], v[k] = _sgd_nesterov(p[k], g[k], v[k], lr, momentum, weight_decay)
    else:
        v = velocity[start:stop]
        for k in range(p.shape[0]):
            p[k], v[k] = _sgd_momentum(p[k], g[k], v[k], lr, momentum, weight_decay)


@njit(cache=True, error_model="numpy")
def sgd_range_finite(param, grad, velocity, lr, momentum, nesterov, weight_decay, start, stop):
    """Whether ``sgd_range`` with the same arguments would leave every parameter (and
    velocity) in ``[start, stop)`` finite. Reads only; the same element functions, so the
    answer is exact. Lets a training loop refuse an overflowing update before writing any of
    it, with no copy of the parameters kept for recovery.

    Parameters
    ----------
    param, grad, velocity : ndarray (n,)
        As for ``sgd_range``; nothing is written.
    lr, momentum, nesterov, weight_decay
        As for ``sgd_range``.
    start, stop : int
        The half-open index range to check.

    Returns
    -------
    bool
        True when every new value would be finite.
    """
    plain = momentum == 0.0
    lr = _as_dtype_of(param, lr)
    momentum = _as_dtype_of(param, momentum)
    weight_decay = _as_dtype_of(param, weight_decay)
    zero = _as_dtype_of(param, 0.0)
    # x * 0 is 0 for finite x and NaN otherwise; an integer OR keeps the loop vectorised
    bad = 0
    p, g = param[start:stop], grad[start:stop]
    if plain:
        for k in range(p.shape[0]):
            bad |= not math.isfinite(_sgd_plain(p[k], g[k], lr, weight_decay))
    else:
        v = velocity[start:stop]
        for k in range(p.shape[0]):
            if nesterov:  # loop-invariant: LLVM unswitches it
                pk, vk = _sgd_nesterov(p[k], g[k], v[k], lr, momentum, weight_decay)
            else:
                pk, vk = _sgd_momentum(p[k], g[k], v[k], lr, momentum, weight_decay)
            bad |= not math.isfinite(pk * zero + vk * zero)
    return bad == 0


# One element of each update, shared by the update and its finiteness check so both compute
# bit-identical values. Inlined into those loops (typed there, not compiled and linked on
# their own: a shorter cold compile).
@njit(cache=True, error_model="numpy", inline='always')
def _sgd_plain(p, g, lr, weight_decay):
    return p - lr * (g + weight_decay * p)


@njit(cache=True, error_model="numpy", inline='always')
def _sgd_nesterov(p, g, v, lr, momentum, weight_decay):
    g = g + weight_decay * p
    v = momentum * v + g
    return p - lr * (g + momentum * v), v


@njit(cache=True, error_model="numpy", inline='always')
def _sgd_momentum(p, g, v, lr, momentum, weight_decay):
    v = momentum * v + (g + weight_decay * p)
    return p - lr * v, v


@njit(cache=True, error_model="numpy", inline='always')
def _adam_scalars(param, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """``_adam``'s loop-invariant scalars, in the dtype of ``param``."""
    bc1 = 1.0 - beta1 ** step
    inv_bc2_sqrt = _as_dtype_of(param, 1.0 / math.sqrt(1.0 - beta2 ** step))
    step_size = _as_dtype_of(param, lr / bc1)
    shrink = _as_dtype_of(param, 1.0 - lr * weight_decay if decoupled else 1.0)
    l2 = _as_dtype_of(param, 0.0 if decoupled else weight_decay)
    b1, c1 = _as_dtype_of(param, beta1), _as_dtype_of(param, 1.0 - beta1)
    b2, c2 = _as_dtype_of(param, beta2), _as_dtype_of(param, 1.0 - beta2)
    e = _as_dtype_of(param, eps)
    return shrink, l2, b1, c1, b2, c2, step_size, inv_bc2_sqrt, e


@njit(cache=True, error_model="numpy", inline='always')
def _adam(p, g, m, v, shrink, l2, b1, c1, b2, c2, step_size, inv_bc2_sqrt, e):
    g = g + l2 * p
    m = b1 * m + c1 * g
    v = b2 * v + c2 * g * g
    return p * shrink - step_size * m / (math.sqrt(v) * inv_bc2_sqrt + e), m, v


@njit(cache=True, error_model="numpy")
def adam_range(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled,
               start, stop):
    """torch.optim.Adam (``decoupled=False``) or AdamW (``decoupled=True``) on [start, stop).

    ``step`` is this update's 1-based count (bias corrections ``1 - beta**step``).

    Parameters
    ----------
    param : ndarray (n,)
        Parameters, updated in place.
    grad : ndarray (n,)
        Gradients.
    m, v : ndarray (n,)
        First and second moment buffers, updated in place.
    step : int
        1-based step count of this update.
    lr : float
        Learning rate.
    beta1, beta2 : float
        Moment decay rates.
    eps : float
        Denominator term.
    weight_decay : float
        L2 penalty (coupled) or decay rate (decoupled).
    decoupled : bool
        AdamW's decoupled weight decay.
    start, stop : int
        The half-open index range to update.
    """
    # Scalars in the arrays' dtype: float32 arrays then compute in float32 (as torch does for
    # float32 parameters) instead of being promoted to float64; with the reciprocal of
    # sqrt(bc2) hoisted, measured 1.8x faster for float32 and 1.3x for float64.
    shrink, l2, b1, c1, b2, c2, step_size, inv_bc2_sqrt, e = _adam_scalars(
        param, step, lr, beta1, beta2, eps, weight_decay, decoupled)
    p, g, ms, vs = param[start:stop], grad[start:stop], m[start:stop], v[start:stop]
    for k in range(p.shape[0]):  # views indexed from 0: see sgd_range
        p[k], ms[k], vs[k] = _adam(p[k], g[k], ms[k], vs[k], shrink, l2, b1, c1, b2, c2,
                                   step_size, inv_bc2_sqrt, e)


@njit(cache=True, error_model="numpy")
def adam_range_finite(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                      start, stop):
    """Whether ``adam_range`` with the same arguments would leave every parameter and moment
    in ``[start, stop)`` finite; reads only, exact (see ``sgd_range_finite``).

    Parameters
    ----------
    param, grad, m, v : ndarray (n,)
        As for ``adam_range``; nothing is written.
    step, lr, beta1, beta2, eps, weight_decay, decoupled
        As for ``adam_range`` (``step``: the 1-based count of the update to check).
    start, stop : int
        The half-open index range to check.

    Returns
    -------
    bool
        True when every new value would be finite.
    """
    shrink, l2, b1, c1, b2, c2, step_size, inv_bc2_sqrt, e = _adam_scalars(
        param, step, lr, beta1, beta2, eps, weight_decay, decoupled)
    zero = _as_dtype_of(param, 0.0)
    bad = 0
    p, g, ms, vs = param[start:stop], grad[start:stop], m[start:stop], v[start:stop]
    for k in range(p.shape[0]):
        pk, mk, vk = _adam(p[k], g[k], ms[k], vs[k], shrink, l2, b1, c1, b2, c2, step_size,
                           inv_bc2_sqrt, e)
        bad |= not math.isfinite(pk * zero + vk * zero)  # m overflowing makes p non-finite
    return bad == 0


@njit(cache=True, parallel=True, error_model="numpy")
def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    """In-place SGD step on 1-D arrays (pass ``W.reshape(-1)`` for a matrix); see sgd_range.

    Parameters
    ----------
    param : ndarray (n,)
        Parameters, updated in place.
    grad : ndarray (n,)
        Gradients.
    velocity : ndarray (n,)
        Momentum buffer, updated in place (ignored when momentum is 0).
    lr : float
        Learning rate.
    momentum : float
        Momentum factor.
    nesterov : bool
        Nesterov momentum.
    weight_decay : float
        L2 penalty added to the gradient.
    """
    n = param.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    mode = fp_mode()  # the caller's denormal mode, for every chunk (fpmode.py)
    for c in prange(nchunks):
        saved = fp_adopt(mode)
        sgd_range(param, grad, velocity, lr, momentum, nesterov, weight_decay,
                  c * _CHUNK, min(n, (c + 1) * _CHUNK))
        fp_adopt(saved)


@njit(cache=True, parallel=True, error_model="numpy")
def adam_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """In-place Adam/AdamW step on 1-D arrays; see adam_range.

    Parameters
    ----------
    param : ndarray (n,)
        Parameters, updated in place.
    grad : ndarray (n,)
        Gradients.
    m, v : ndarray (n,)
        First and second moment buffers, updated in place.
    step : int
        1-based step count of this update.
    lr : float
        Learning rate.
    beta1, beta2 : float
        Moment decay rates.
    eps : float
        Denominator term.
    weight_decay : float
        L2 penalty (coupled) or decay rate (decoupled).
    decoupled : bool
        AdamW's decoupled weight decay.
    """
    n = param.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    mode = fp_mode()
    for c in prange(nchunks):
        saved = fp_adopt(mode)
        adam_range(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                   c * _CHUNK, min(n, (c + 1) * _CHUNK))
        fp_adopt(saved)

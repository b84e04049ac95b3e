"""Whole-network drivers: forward/backward over all layers and a compiled minibatch loop.

Layout contract (shared with the Python engine that allocates the buffers):

* ``sizes`` int64 (L+1,): layer widths, input first. ``codes`` int64 (L,): activation code of
  each layer, the last being the output activation.
* ``params`` 1-D: every ``W_l`` (row-major, shape ``(sizes[l], sizes[l+1])``) in layer order,
  then every ``b_l``. ``grads`` has the same layout.
* Workspaces for ``B`` rows: ``A_buf`` of ``B * sum(sizes)`` (A_0 = the batch's inputs first),
  ``Z_buf`` of ``B * sum(sizes[1:])``, ``D_buf`` (2, ``B * max(sizes[1:])``) for deltas.

The per-layer kernels these drivers call (``forward``, ``hidden_delta``,
``weight_gradients``, the view helpers) and ``forward_network``/``backward_network``
themselves are ``inline='always'``: compiled into the driver instead of linked in as
separately compiled functions. Numba re-optimises and re-emits every linked callee at each
level of calls, so the flat drivers cold-compile about 1.5 s sooner (docs/performance.md).
Called from Python they still compile and cache on their own.

The loops are serial; the matrix products (``gemm.py``) run in fastbp's own code, spread over
Numba's threads only when the caller passes ``threaded=True`` (then products up to
``gemm.BLAS_MIN_MACS_*_THREADED`` stay out of BLAS; README, "Threading").
"""
import math

import numpy as np
from numba import njit, prange
from numba.extending import overload

from ..activations import ADAM, BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE, SGD, SOFTMAX
from .backward import hidden_delta, loss_sum, output_delta
from .bounds import max_abs, state_bounds, step_bounds
from .forward import forward
from .fpmode import fp_adopt, fp_mode
from .gradient_step import ADAM_MODE, PLAIN, fuses, gradient_bound
from .gradient_step import threaded_weight_gradient_step
from .gradient_step import MOMENTUM as MOMENTUM_MODE, NESTEROV as NESTEROV_MODE
from .gradients import bias_sums, weight_gradients
from .gemm import _never_threaded, matmul_tn
from .updates import adam_range, adam_range_finite, sgd_range, sgd_range_finite
from .uses import (activations_only, has_optimizer, optimizer_only, uses_loss, uses_optimizer,
                   without_optimizer)
from .views import borrowed_1d, borrowed_2d, borrowed_flat

# hyper-parameter slots of the float64 ``hyper`` array the training driver takes
LR, MOMENTUM, NESTEROV, WEIGHT_DECAY, BIAS_DECAY, BETA1, BETA2, EPS, DECOUPLED = range(9)
N_HYPER = 9


@njit(cache=True, error_model="numpy", inline='always')
def n_weights(sizes):
    """Number of weights of a network with layer widths ``sizes``.

    Parameters
    ----------
    sizes : ndarray of int64 (L+1,)
        Layer widths, input first.

    Returns
    -------
    int
        Number of weights (the offset of the first bias in the flat vector).
    """
    # not ``total = 0``: type inference passes through Literal[int](0) on its way to int64,
    # and train_batches' call of apply_update with that intermediate type compiled a second,
    # useless specialisation of the whole update at every cold start
    total = np.int64(0)
    for l in range(sizes.shape[0] - 1):
        total += sizes[l] * sizes[l + 1]
    return total


@njit(cache=True, error_model="numpy")
def weight_view(params, sizes, l):
    """W of layer l (0-based) as an (sizes[l], sizes[l+1]) view of the flat vector.

    Parameters
    ----------
    params : ndarray (n_params,)
        Flat parameter (or gradient) vector.
    sizes : ndarray of int64 (L+1,)
        Layer widths.
    l : int
        0-based layer.

    Returns
    -------
    ndarray (sizes[l], sizes[l+1])
        A view.
    """
    off = 0
    for k in range(l):
        off += sizes[k] * sizes[k + 1]
    return params[off:off + sizes[l] * sizes[l + 1]].reshape((sizes[l], sizes[l + 1]))


@njit(cache=True, error_model="numpy")
def bias_view(params, sizes, l):
    """b of layer l (0-based) as a (sizes[l+1],) view of the flat vector.

    Parameters
    ----------
    params : ndarray (n_params,)
        Flat parameter (or gradient) vector.
    sizes : ndarray of int64 (L+1,)
        Layer widths.
    l : int
        0-based layer.

    Returns
    -------
    ndarray (sizes[l+1],)
        A view.
    """
    off = n_weights(sizes)
    for k in range(l):
        off += sizes[k + 1]
    return params[off:off + sizes[l + 1]]


@njit(cache=True, error_model="numpy")
def act_view(A_buf, sizes, rows, l, m):
    """A_l (l = 0 is the input) for m rows, in a workspace laid out for ``rows`` rows.

    Parameters
    ----------
    A_buf : ndarray (rows * sum(sizes),)
        Activation workspace.
    sizes : ndarray of int64 (L+1,)
        Layer widths.
    rows : int
        Rows the workspace is laid out for.
    l : int
        Layer (0 is the input).
    m : int
        Rows in use (<= rows).

    Returns
    -------
    ndarray (m, sizes[l])
        A view.
    """
    off = 0
    for k in range(l):
        off += rows * sizes[k]
    return A_buf[off:off + m * sizes[l]].reshape((m, sizes[l]))


@njit(cache=True, error_model="numpy")
def z_view(Z_buf, sizes, rows, l, m):
    """Z_l (l >= 1) for m rows.

    Parameters
    ----------
    Z_buf : ndarray (rows * sum(sizes[1:]),)
        Pre-activation workspace.
    sizes : ndarray of int64 (L+1,)
        Layer widths.
    rows : int
        Rows the workspace is laid out for.
    l : int
        Layer (>= 1).
    m : int
        Rows in use (<= rows).

    Returns
    -------
    ndarray (m, sizes[l])
        A view.
    """
    off = 0
    for k in range(1, l):
        off += rows * sizes[k]
    return Z_buf[off:off + m * sizes[l]].reshape((m, sizes[l]))


# The drivers' own views: uncounted (views.py), since the drivers make several per layer per
# batch and never let one escape. Same offsets as the public views above.
@njit(cache=True, error_model="numpy", inline='always')
def _w(params, sizes, l):
    off = 0
    for k in range(l):
        off += sizes[k] * sizes[k + 1]
    return borrowed_2d(params, off, sizes[l], sizes[l + 1])


@njit(cache=True, error_model="numpy", inline='always')
def _b(params, sizes, l):
    off = 0
    for k in range(sizes.shape[0] - 1):
        off += sizes[k] * sizes[k + 1]
    for k in range(l):
        off += sizes[k + 1]
    return borrowed_1d(params, off, sizes[l + 1])


@njit(cache=True, error_model="numpy", inline='always')
def _act(A_buf, sizes, rows, l, m):
    off = 0
    for k in range(l):
        off += rows * sizes[k]
    return borrowed_2d(A_buf, off, m, sizes[l])


@njit(cache=True, error_model="numpy", inline='always')
def _z(Z_buf, sizes, rows, l, m):
    off = 0
    for k in range(1, l):
        off += rows * sizes[k]
    return borrowed_2d(Z_buf, off, m, sizes[l])


@njit(cache=True, error_model="numpy", inline='always')
def _delta(D_buf, i, m, n):
    """Rows ``m`` by ``n`` at the start of ``D_buf[i]``."""
    return borrowed_2d(borrowed_flat(D_buf), i * D_buf.shape[1], m, n)


@njit(cache=True, nogil=True, error_model="numpy", inline='always')
def forward_network(params, sizes, codes, m, rows, A_buf, Z_buf, threaded=None, uses=None):
    """Forward through every layer for the m rows already in A_0; fills every Z_l and A_l.

    Parameters
    ----------
    params : ndarray (n_params,)
        Flat parameter vector.
    sizes : ndarray of int64 (L+1,)
        Layer widths.
    codes : ndarray of int64 (L,)
        Activation code of each layer, the output's last.
    m : int
        Rows in use.
    rows : int
        Rows the workspaces are laid out for.
    A_buf, Z_buf : ndarray
        Workspaces (see the module docstring); A_0 holds the inputs.
    threaded : bool or None
        Let large products use Numba's threads (see ``gemm.matmul``; None,
        the default, compiles no threaded code).
    uses : Uses or None
        Compile only these activations (``uses.py``; None, the default: every one).
    """
    acts = activations_only(uses)  # the layers' kernels: shared by nets of other losses
    for l in range(sizes.shape[0] - 1):
        forward(_act(A_buf, sizes, rows, l, m), _w(params, sizes, l),
                _b(params, sizes, l), codes[l],
                _z(Z_buf, sizes, rows, l + 1, m), _act(A_buf, sizes, rows, l + 1, m),
                threaded, acts)


@njit(cache=True, nogil=True, error_model="numpy", inline='always')
def backward_network(params, sizes, codes, loss_code, Y, m, rows, A_buf, Z_buf, D_buf, grads,
                     threaded=None, uses=None):
    """Mean-loss gradients of the m-row batch (after forward_network) into ``grads``.

    Parameters
    ----------
    params : ndarray (n_params,)
        Flat parameter vector.
    sizes : ndarray of int64 (L+1,)
        Layer widths.
    codes : ndarray of int64 (L,)
        Activation codes.
    loss_code : int
        Loss code.
    Y : ndarray (m, K)
        Targets of the batch.
    m : int
        Rows in use.
    rows : int
        Rows the workspaces are laid out for.
    A_buf, Z_buf : ndarray
        Workspaces filled by forward_network.
    D_buf : ndarray (2, rows * max(sizes[1:]))
        Delta workspace.
    grads : ndarray (n_params,)
        Output: gradients, same layout as params.
    threaded : bool or None
        Let large products use Numba's threads (see ``gemm.matmul``; None,
        the default, compiles no threaded code).
    uses : Uses or None
        Compile only these activations and losses (``uses.py``; None, the default: all).
    """
    L = sizes.shape[0] - 1
    K = sizes[L]
    scale = 1.0 / (m * K) if loss_code == MSE else 1.0 / m
    delta = _delta(D_buf, 0, m, K)
    output_delta(_z(Z_buf, sizes, rows, L, m), _act(A_buf, sizes, rows, L, m), Y,
                 codes[L - 1], loss_code, scale, delta, uses)
    for l in range(L - 1, -1, -1):
        weight_gradients(_act(A_buf, sizes, rows, l, m), delta,
                         _w(grads, sizes, l), _b(grads, sizes, l), threaded)
        if l > 0:
            prev = _delta(D_buf, (L - l) % 2, m, sizes[l])
            hidden_delta(delta, _w(params, sizes, l), _z(Z_buf, sizes, rows, l, m),
                         _act(A_buf, sizes, rows, l, m), codes[l - 1], prev, threaded,
                         activations_only(uses))
            delta = prev


@njit(cache=True, error_model="numpy")
def _update_range(params, grads, state, opt, hyper, t, nw, start, stop, check, uses=None):
    """The optimizer step on ``[start, stop)`` (``t``: Adam's 1-based count of this step);
    with ``check`` True, write nothing and return whether the step would leave every parameter
    and state entry there finite (the ``*_range_finite`` twins compute the same values).
    ``check`` None (the type, so Numba prunes the other branch) compiles the update only;
    ``uses`` (``uses.py``) leaves out the optimizers it does not include."""
    lr = hyper[LR]
    wd = hyper[WEIGHT_DECAY]
    ok = True
    for part in range(2):  # weights, then biases (their own decay)
        lo = start if part == 0 else max(start, nw)
        hi = min(stop, nw) if part == 0 else stop
        if lo >= hi:
            continue
        decay = wd if part == 0 else wd * hyper[BIAS_DECAY]
        if opt == SGD:
            ok = ok and _sgd_if_used(params, grads, state, hyper, lr, decay, lo, hi, check,
                                     uses)
        else:
            ok = ok and _adam_if_used(params, grads, state, hyper, t, lr, decay, lo, hi, check,
                                      uses)
    return ok


def _sgd_if_used(params, grads, state, hyper, lr, decay, lo, hi, check, uses):
    raise NotImplementedError("call from @njit code")


@overload(_sgd_if_used, inline="always")
def _sgd_if_used_impl(params, grads, state, hyper, lr, decay, lo, hi, check, uses):
    """SGD's part of ``_update_range``: nothing where ``uses`` leaves SGD out, the update
    where ``check`` is None, else its finiteness check (chosen when the types are known)."""
    if not uses_optimizer(uses, SGD):
        return lambda params, grads, state, hyper, lr, decay, lo, hi, check, uses: True
    if _never_threaded(check):  # None or left out (the same type test as threaded's)
        def impl_update(params, grads, state, hyper, lr, decay, lo, hi, check, uses):
            mom = hyper[MOMENTUM]
            vel = state[0] if mom != 0.0 else grads  # velocity unused without momentum
            sgd_range(params, grads, vel, lr, mom, hyper[NESTEROV] != 0.0, decay, lo, hi)
            return True
        return impl_update

    def impl_check(params, grads, state, hyper, lr, decay, lo, hi, check, uses):
        mom = hyper[MOMENTUM]
        vel = state[0] if mom != 0.0 else grads
        return sgd_range_finite(params, grads, vel, lr, mom, hyper[NESTEROV] != 0.0, decay,
                                lo, hi)
    return impl_check


def _adam_if_used(params, grads, state, hyper, t, lr, decay, lo, hi, check, uses):
    raise NotImplementedError("call from @njit code")


@overload(_adam_if_used, inline="always")
def _adam_if_used_impl(params, grads, state, hyper, t, lr, decay, lo, hi, check, uses):
    """Adam's part of ``_update_range``, as ``_sgd_if_used``."""
    if not uses_optimizer(uses, ADAM):
        return lambda params, grads, state, hyper, t, lr, decay, lo, hi, check, uses: True

    if _never_threaded(check):
        def impl_update(params, grads, state, hyper, t, lr, decay, lo, hi, check, uses):
            adam_range(params, grads, state[0], state[1], t, lr, hyper[BETA1], hyper[BETA2],
                       hyper[EPS], decay, hyper[DECOUPLED] != 0.0, lo, hi)
            return True
        return impl_update

    def impl_check(params, grads, state, hyper, t, lr, decay, lo, hi, check, uses):
        return adam_range_finite(params, grads, state[0], state[1], t, lr, hyper[BETA1],
                                 hyper[BETA2], hyper[EPS], decay, hyper[DECOUPLED] != 0.0, lo,
                                 hi)
    return impl_check


#: Updates of at least this many parameters split over Numba's threads when the caller
#: passes ``threaded=True``: a large update is bound by one core's memory bandwidth.
PARALLEL_MIN_PARAMS = 1 << 18
_UPDATE_CHUNK = 1 << 16


@njit(cache=True, parallel=True, error_model="numpy")
def _update_parallel(params, grads, state, opt, hyper, t, nw, check, uses):
    n = params.shape[0]
    nchunks = (n + _UPDATE_CHUNK - 1) // _UPDATE_CHUNK
    bad = 0
    mode = fp_mode()  # the caller's denormal mode, for every chunk (fpmode.py)
    for c in prange(nchunks):  # each chunk its own entries; an integer sum reduction
        saved = fp_adopt(mode)
        if not _update_range(params, grads, state, opt, hyper, t, nw, c * _UPDATE_CHUNK,
                             min(n, (c + 1) * _UPDATE_CHUNK), check, uses):
            bad += 1
        fp_adopt(saved)
    return bad == 0


@njit(cache=True, error_model="numpy")
def apply_update(params, grads, state, opt, hyper, step, nw, threaded=None, uses=None):
    """One optimizer step on the flat vector. The first ``nw`` entries (the weights) take
    ``hyper[WEIGHT_DECAY]``; the biases take it times ``hyper[BIAS_DECAY]`` (1 as in PyTorch,
    0 for scikit-learn's L2 penalty on weights only). ``step`` int64 (1,): Adam's count.

    Parameters
    ----------
    params : ndarray (n_params,)
        Flat parameter vector, updated in place.
    grads : ndarray (n_params,)
        Gradients.
    state : ndarray (k, n_params)
        Optimizer state: velocity (SGD) or moments (Adam).
    opt : int
        SGD or ADAM from ``fastbp.kernels.activations``.
    hyper : ndarray of float64 (N_HYPER,)
        Hyper-parameters (LR, MOMENTUM, ... slots).
    step : ndarray of int64 (1,)
        Adam's step count, incremented in place.
    nw : int
        Number of weights (entries before the biases).
    threaded : bool or None
        Split updates of at least ``PARALLEL_MIN_PARAMS`` parameters over Numba's threads
        (None, the default, compiles no threaded code).
    uses : Uses or None
        Compile only this optimizer (``uses.py``; another code raises ValueError). None
        (the default): both.
    """
    if opt != SGD and opt != ADAM:
        raise ValueError("apply_update: unknown optimizer code")
    if not has_optimizer(uses, opt):
        raise ValueError("apply_update: optimizer code not in uses")
    if opt == ADAM:
        step[0] += 1
    # ``is None`` on the argument: pruned at compile time, so without threads the parallel
    # update is never compiled
    if threaded is not None and threaded and params.shape[0] >= PARALLEL_MIN_PARAMS:
        _update_parallel(params, grads, state, opt, hyper, step[0], nw, None, uses)
    else:
        # start as int64, not the literal 0: one specialisation of _update_range serves this
        # call and the parallel chunks' (see n_weights)
        _update_range(params, grads, state, opt, hyper, step[0], nw, np.int64(0),
                      params.shape[0], None, uses)


@njit(cache=True, error_model="numpy")
def update_is_finite(params, grads, state, opt, hyper, step, nw, threaded=None, uses=None):
    """Whether ``apply_update`` with the same arguments would leave every parameter and
    optimizer-state entry finite. Reads only (``step`` is not incremented) and computes the
    same values, so the answer is exact: a training loop can refuse an overflowing update
    before any of it is written, without keeping a copy of the parameters.

    Parameters
    ----------
    params, grads, state, opt, hyper, step, nw, threaded, uses
        As for ``apply_update``.

    Returns
    -------
    bool
        True when the update would be finite everywhere.
    """
    if opt != SGD and opt != ADAM:
        raise ValueError("update_is_finite: unknown optimizer code")
    if not has_optimizer(uses, opt):
        raise ValueError("update_is_finite: optimizer code not in uses")
    t = step[0] + 1 if opt == ADAM else step[0]
    if threaded is not None and threaded and params.shape[0] >= PARALLEL_MIN_PARAMS:
        return _update_parallel(params, grads, state, opt, hyper, t, nw, True, uses)
    return _update_range(params, grads, state, opt, hyper, t, nw, np.int64(0), params.shape[0],
                         True, uses)


@njit(cache=True, error_model="numpy")
def batch_loss_sum(Z, A, Y, out_code, loss_code, uses=None):
    """loss_sum after a forward pass (A = f(Z)). For softmax + cross_entropy it reuses the
    softmax: with k the row's argmax, ``logsumexp(z) = z_k - log(a_k)`` and ``a_k >= 1/K``, so
    one log per row replaces K exps, and the value stays finite for any finite Z."""
    if not (out_code == SOFTMAX and loss_code == CROSS_ENTROPY):
        return _other_loss_sum(Z, A, Y, out_code, loss_code, uses)
    n, K = A.shape
    total = 0.0
    for i in range(n):
        k = 0
        for j in range(1, K):
            if Z[i, j] > Z[i, k]:
                k = j
        lse = float(Z[i, k]) - math.log(float(A[i, k]))
        for j in range(K):
            if Y[i, j] != 0:
                total += Y[i, j] * (lse - Z[i, j])
    return total


def _other_loss_sum(Z, A, Y, out_code, loss_code, uses):
    raise NotImplementedError("call from @njit code")


@overload(_other_loss_sum)
def _other_loss_sum_impl(Z, A, Y, out_code, loss_code, uses):
    """``loss_sum`` for ``batch_loss_sum``'s other pairings. Where ``uses`` includes no loss
    but cross_entropy, which only a softmax output takes (``activations.LOSS_OUTPUTS``), no
    valid call gets here: it raises instead of compiling ``loss_sum`` (0.45 s of a cold
    start)."""
    if (uses_loss(uses, CROSS_ENTROPY) and not uses_loss(uses, MSE)
            and not uses_loss(uses, BINARY_CROSS_ENTROPY)):
        def refuse(Z, A, Y, out_code, loss_code, uses):
            raise ValueError("batch_loss_sum: with only cross_entropy in uses, the output "
                             "must be softmax")
        return refuse
    return lambda Z, A, Y, out_code, loss_code, uses: loss_sum(Z, A, Y, out_code, loss_code,
                                                                uses)


@njit(cache=True, nogil=True, error_model="numpy")
def train_batches(X, Y, order, batch_size, first, last, sizes, codes, loss_code, params, grads,
                  state, opt, hyper, step, A_buf, Z_buf, D_buf, Y_buf, threaded=None,
                  checked=None, uses=None):
    """Minibatches ``first .. last-1`` of one epoch, each: gather, forward, loss, backward, update.

    X (n, sizes[0]) and Y (n, K) float, ``order`` int64 (n,) the epoch's sample order; batch
    b holds ``order[b*batch_size : (b+1)*batch_size]`` (the last may be smaller). ``state``
    (k, n_params): velocity (SGD with momentum) or first and second moments (Adam). ``step``
    int64 (2,): [Adam's step count, number of weights]. ``Y_buf`` (rows, K).
    Returns (sum of per-sample losses, batches completed, status): status 0 = all done,
    1 = a batch's loss was not finite, 2 = (with ``checked``) a batch's update would have made
    a parameter or optimizer-state entry non-finite; either way that batch made no update.

    Parameters
    ----------
    X : ndarray (n, sizes[0])
        Inputs.
    Y : ndarray (n, K)
        Targets.
    order : ndarray of int64 (n,)
        The epoch's sample order.
    batch_size : int
        Rows per minibatch.
    first, last : int
        The batches to run, ``first .. last-1``.
    sizes : ndarray of int64 (L+1,)
        Layer widths.
    codes : ndarray of int64 (L,)
        Activation codes.
    loss_code : int
        Loss code.
    params : ndarray (n_params,)
        Flat parameter vector, updated in place.
    grads : ndarray (n_params,)
        Gradient workspace.
    state : ndarray (k, n_params)
        Optimizer state.
    opt : int
        Optimizer code.
    hyper : ndarray of float64 (N_HYPER,)
        Hyper-parameters.
    step : ndarray of int64
        Step counters.
    A_buf, Z_buf, D_buf, Y_buf : ndarray
        Workspaces for ``batch_size`` rows.
    threaded : bool or None
        Let large products use Numba's threads (see ``gemm.matmul``; None, the
        default, compiles no threaded code). The engine passes True only where that is safe
        (``fastbp/_threading.py``) and some product is large enough to split. Layers whose
        gradient product then runs threaded take their optimizer step fused with it
        (``gradient_step.py``; the same bits as the product and the update).
    checked : bool or None
        True: prove each update finite before writing it, so the parameters stay finite
        without a recovery copy: from magnitude bounds where they suffice (``bounds.py``:
        one read of the gradients), else with ``update_is_finite`` (status 2 when it fails).
        Fused layers (see ``threaded``) are proven from ``gradient_bound``.
        None (the default) compiles no check.
    uses : Uses or None
        Compile only the activations, loss and optimizer it includes (``uses.py``: a first
        epoch's cold compile about 2.5 s shorter); None (the default): all of them.

    Returns
    -------
    tuple of (float, int, int)
        Loss sum, batches completed, status.
    """
    n = order.shape[0]
    L = sizes.shape[0] - 1
    rows = Y_buf.shape[0]
    nw = n_weights(sizes)
    total = 0.0
    acts = without_optimizer(uses)  # the layers' kernels: shared with inference
    opts = optimizer_only(uses)  # the update's: shared by nets of other activations or loss
    # Checked updates: bounds of the largest parameter and state magnitudes, measured once
    # here and carried forward by each step's own bound (bounds.py), so that most steps are
    # proven finite from one read of the gradients instead of the exact check's recomputation
    # (measured per call: user code between calls may have changed the parameters).
    P = S0 = S1 = P2 = S02 = S12 = 0.0
    bounded = checked is not None and checked  # False: the exact check only
    fresh = True  # the bounds were just measured
    if checked is not None and checked:
        P, S0, S1 = state_bounds(params, state)
    for b in range(first, last):
        r0 = b * batch_size
        m = min(n, r0 + batch_size) - r0
        A0 = _act(A_buf, sizes, rows, 0, m)
        Yb = Y_buf[:m]
        # ``is None`` on the argument itself: Numba prunes the branch at compile time, so
        # the unthreaded specialisation neither types nor compiles the parallel copy
        if threaded is not None and threaded and m * X.shape[1] >= PARALLEL_MIN_GATHER:
            _gather_parallel(X, Y, order, r0, A0, Yb)
        else:
            _gather_rows(X, Y, order, r0, 0, m, A0, Yb)
        forward_network(params, sizes, codes, m, rows, A_buf, Z_buf, threaded, acts)
        batch_loss = batch_loss_sum(_z(Z_buf, sizes, rows, L, m),
                                    _act(A_buf, sizes, rows, L, m), Yb, codes[L - 1], loss_code,
                                    acts)
        if not math.isfinite(batch_loss):
            return total, b - first, 1
        # ``checked`` None: the check is pruned at compile time (never compiled); the
        # ``is not None`` tests alone are pruned too, so a checked specialisation compiles no
        # backward_network (a ``checked=False`` call takes _deltas_and_gradients' plain path)
        proven = False
        fused = False
        if checked is not None:
            # Every delta first. Where the bounds are in use, a layer whose gradient product
            # runs threaded keeps its delta instead (gradient_step.py: its gradient never
            # reaches memory), and the step is proven from a bound of that gradient taken
            # from its factors; the other gradients are measured exactly.
            fusing = bounded and _fuses_any(m, sizes, params, threaded)
            G = _deltas_and_gradients(params, sizes, codes, loss_code, Yb, m, rows, A_buf,
                                      Z_buf, D_buf, grads, fusing, bounded, threaded, acts)
        if checked is not None and checked:
            if bounded:
                proven, P2, S02, S12 = _proven_finite(params, G, opt, hyper, step, P, S0, S1)
                fused = fusing and proven
                if fusing and not proven:  # the left-out gradients, then their exact maximum
                    _fused_layers_gradients(sizes, m, rows, A_buf, Z_buf, grads, threaded)
                    proven, P2, S02, S12 = _proven_finite(params, max_abs(grads), opt, hyper,
                                                          step, P, S0, S1)
            if not proven and not update_is_finite(params, grads, state, opt, hyper, step, nw,
                                                   threaded, opts):
                return total, b - first, 2
        if checked is None:
            if threaded is not None:
                # threaded, unchecked: the layers whose gradient product runs threaded take
                # the step fused with it too (gradient_step.py: the same bits as the product
                # and the update, without the gradient's round trip through memory; the
                # snapshot at chunk boundaries still guards against divergence). Measured on
                # mnist-sized nets, 1.17-1.20x the epochs of the separate passes.
                fused = _fuses_any(m, sizes, params, threaded)
                # ``measure`` a bool False, not the constant: Numba would type that as a
                # literal and compile a second specialisation, besides the checked driver's
                # (which compiles this branch too) and the compile helper's
                _deltas_and_gradients(params, sizes, codes, loss_code, Yb, m, rows, A_buf,
                                      Z_buf, D_buf, grads, fused, np.bool_(False), threaded,
                                      acts)
            else:
                backward_network(params, sizes, codes, loss_code, Yb, m, rows, A_buf, Z_buf,
                                 D_buf, grads, threaded, acts)
        total += batch_loss
        if threaded is not None and fused:  # (pruned from unthreaded drivers)
            _fused_update(params, grads, state, opt, hyper, step, nw, sizes, m, rows, A_buf,
                          Z_buf, D_buf, threaded, opts)
        else:
            apply_update(params, grads, state, opt, hyper, step, nw, threaded, opts)
        if checked is not None and checked and bounded:
            if proven:
                P, S0, S1 = P2, S02, S12
                fresh = False
            elif fresh:  # even just-measured bounds prove nothing: the exact check from here
                bounded = False
            else:  # carried bounds grew too loose: measure them again
                P, S0, S1 = state_bounds(params, state)
                fresh = True
    return total, last - first, 0


@njit(cache=True, error_model="numpy", inline='always')
def _proven_finite(params, G, opt, hyper, step, P, S0, S1):
    """``bounds.step_bounds`` for ``apply_update``'s next step with gradients of magnitude at
    most ``G``: (proven, P', S0', S1')."""
    wd = hyper[WEIGHT_DECAY]
    t = step[0] + 1 if opt == ADAM else step[0]
    return step_bounds(params, P, S0, S1, G, opt, hyper[LR], hyper[MOMENTUM],
                       hyper[NESTEROV] != 0.0, wd, wd * hyper[BIAS_DECAY], hyper[BETA1],
                       hyper[BETA2], hyper[EPS], hyper[DECOUPLED] != 0.0, t)


@njit(cache=True, error_model="numpy", inline='always')
def _fuses_any(m, sizes, params, threaded):
    for l in range(sizes.shape[0] - 1):
        if fuses(m, sizes[l], sizes[l + 1], params, threaded):
            return True
    return False


@njit(cache=True, error_model="numpy")
def _deltas_and_gradients(params, sizes, codes, loss_code, Y, m, rows, A_buf, Z_buf, D_buf,
                          grads, fusing, measure, threaded=None, uses=None):
    """``backward_network`` for checked training: its loop again, with the fused layers'
    branches (``backward_network`` calling this one with them pruned measured 0.3 s more in
    the unchecked digits cold start: 8.8-9.5 s against 8.1-8.9). With ``fusing``, each layer
    that ``gradient_step.fuses`` keeps its delta in its Z slot for ``_fused_update`` (Z is spent
    by then) instead of its weight gradient; every other gradient goes into ``grads``. With
    ``measure``, returns an upper bound of every gradient's magnitude: exact for those in
    ``grads``, ``gradient_step.gradient_bound`` for the fused layers' (inf when something is
    not finite); else 0."""
    L = sizes.shape[0] - 1
    K = sizes[L]
    scale = 1.0 / (m * K) if loss_code == MSE else 1.0 / m
    delta = _delta(D_buf, 0, m, K)
    output_delta(_z(Z_buf, sizes, rows, L, m), _act(A_buf, sizes, rows, L, m), Y,
                 codes[L - 1], loss_code, scale, delta, uses)
    G = 0.0
    for l in range(L - 1, -1, -1):
        A = _act(A_buf, sizes, rows, l, m)
        fuse = fusing and fuses(m, sizes[l], sizes[l + 1], params, threaded)
        g = 0.0
        if fuse:
            db = _b(grads, sizes, l)
            bias_sums(delta, db)
            if measure:
                g = max(gradient_bound(A, delta), max_abs(db))
        else:
            weight_gradients(A, delta, _w(grads, sizes, l), _b(grads, sizes, l), threaded)
            if measure:
                g = max(max_abs(borrowed_flat(_w(grads, sizes, l))),
                        max_abs(_b(grads, sizes, l)))
        if not g <= G:  # NaN sticks: it must fail the proof
            G = g
        if fuse:
            _copy(delta, _z(Z_buf, sizes, rows, l + 1, m))
        if l > 0:
            prev = _delta(D_buf, (L - l) % 2, m, sizes[l])
            hidden_delta(delta, _w(params, sizes, l), _z(Z_buf, sizes, rows, l, m), A,
                         codes[l - 1], prev, threaded, activations_only(uses))
            delta = prev
    return G


@njit(cache=True, error_model="numpy", inline='always')
def _copy(src, dst):
    s, d = borrowed_flat(src), borrowed_flat(dst)
    for k in range(s.shape[0]):
        d[k] = s[k]


@njit(cache=True, error_model="numpy")
def _fused_layers_gradients(sizes, m, rows, A_buf, Z_buf, grads, threaded=None):
    """The weight gradients ``_deltas_and_gradients`` left to the fused step, into
    ``grads`` (when the step is not proven and falls back to the checks on ``grads``)."""
    for l in range(sizes.shape[0] - 1):
        if fuses(m, sizes[l], sizes[l + 1], grads, threaded):
            matmul_tn(_act(A_buf, sizes, rows, l, m), _z(Z_buf, sizes, rows, l + 1, m),
                      _w(grads, sizes, l), threaded)


@njit(cache=True, error_model="numpy")
def _fused_update(params, grads, state, opt, hyper, step, nw, sizes, m, rows, A_buf, Z_buf,
                  D_buf, threaded=None, uses=None):
    """``apply_update`` after ``_deltas_and_gradients``: the fused layers through
    ``gradient_step.weight_gradient_step``, the other weights and the biases from ``grads``."""
    if opt != SGD and opt != ADAM:
        raise ValueError("apply_update: unknown optimizer code")
    if not has_optimizer(uses, opt):
        raise ValueError("apply_update: optimizer code not in uses")
    if opt == ADAM:
        step[0] += 1
        mode = ADAM_MODE
    elif hyper[MOMENTUM] == 0.0:
        mode = PLAIN
    elif hyper[NESTEROV] != 0.0:
        mode = NESTEROV_MODE
    else:
        mode = MOMENTUM_MODE
    t = step[0]
    s0 = state[0] if state.shape[0] > 0 else params  # unused without state
    s1 = state[1] if state.shape[0] > 1 else params
    work = D_buf[0]  # the deltas are all in their Z slots now
    # np.int64, not the constant 0: Numba would also compile _update_range for the first
    # iteration's literal 0 (``Literal[int](0)``), a second specialisation never called
    lo = np.int64(0)
    for l in range(sizes.shape[0] - 1):
        hi = lo + sizes[l] * sizes[l + 1]
        if fuses(m, sizes[l], sizes[l + 1], params, threaded):
            # only where threaded (``fuses``): the entry that compiles no one-thread path
            threaded_weight_gradient_step(
                _act(A_buf, sizes, rows, l, m), _z(Z_buf, sizes, rows, l + 1, m),
                _w(params, sizes, l), _w(s0, sizes, l), _w(s1, sizes, l), mode, hyper[LR],
                hyper[MOMENTUM], hyper[WEIGHT_DECAY], hyper[BETA1], hyper[BETA2], hyper[EPS],
                hyper[DECOUPLED] != 0.0, t, work, uses)
        else:
            _update_range(params, grads, state, opt, hyper, t, nw, lo, hi, None, uses)
        lo = hi
    _update_range(params, grads, state, opt, hyper, t, nw, nw, params.shape[0], None, uses)


@njit(cache=True, error_model="numpy", inline='always')
def _gather_rows(X, Y, order, r0, lo, hi, A0, Yb):
    # element loops, not row views: a view costs a reference-count round trip per row
    for r in range(lo, hi):
        src = order[r0 + r]
        for j in range(X.shape[1]):
            A0[r, j] = X[src, j]
        for j in range(Y.shape[1]):
            Yb[r, j] = Y[src, j]


#: Batches of at least this many input elements are gathered by all of Numba's threads when
#: the caller passes ``threaded=True``: each core copies half the rows (mnist's 128 x 784
#: floats from a 25 MB data set) before both read all of them. Measured in one process,
#: interleaved, a threaded mnist step: 3% and 8% faster than the copy on one thread.
PARALLEL_MIN_GATHER = 1 << 15


@njit(cache=True, parallel=True, error_model="numpy")
def _gather_parallel(X, Y, order, r0, A0, Yb):
    m = A0.shape[0]
    step = 16  # rows per task: disjoint rows of A0 and Yb, so no two threads write one place
    for t in prange((m + step - 1) // step):
        _gather_rows(X, Y, order, r0, t * step, min(m, (t + 1) * step), A0, Yb)


@njit(cache=True, nogil=True, error_model="numpy")
def predict_network(params, sizes, codes, X, out, A_buf, Z_buf, threaded=None, uses=None):
    """Output activations of every row of X into ``out`` (n, K), ``rows`` rows at a time.

    Parameters
    ----------
    params : ndarray (n_params,)
        Flat parameter vector.
    sizes : ndarray of int64 (L+1,)
        Layer widths.
    codes : ndarray of int64 (L,)
        Activation codes.
    X : ndarray (n, sizes[0])
        Inputs.
    out : ndarray (n, K)
        Output activations.
    A_buf, Z_buf : ndarray
        Workspaces for ``rows`` rows (rows is deduced from A_buf's length).
    threaded : bool or None
        Let large products use Numba's threads (see ``gemm.matmul``; None,
        the default, compiles no threaded code).
    uses : Uses or None
        Compile only these activations (``uses.py``; None, the default: every one).
    """
    n = X.shape[0]
    L = sizes.shape[0] - 1
    rows = A_buf.shape[0] // _sum(sizes)
    for r0 in range(0, n, rows):
        m = min(n, r0 + rows) - r0
        # element loops, not slice assignment: its shape-mismatch error path alone took
        # seconds of the cold compile
        A0 = _act(A_buf, sizes, rows, 0, m)
        for r in range(m):
            for j in range(X.shape[1]):
                A0[r, j] = X[r0 + r, j]
        forward_network(params, sizes, codes, m, rows, A_buf, Z_buf, threaded, uses)
        AL = _act(A_buf, sizes, rows, L, m)
        for r in range(m):
            for j in range(AL.shape[1]):
                out[r0 + r, j] = AL[r, j]


@njit(cache=True, error_model="numpy", inline='always')
def _sum(sizes):
    s = 0
    for k in range(sizes.shape[0]):
        s += sizes[k]
    return s

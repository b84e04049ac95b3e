"""Weight gradient and optimizer step in one pass: ``W -= step(A_prev.T @ delta)``.

For a net whose parameters do not fit in the caches the separate passes move every weight
gradient through memory three times: the product writes it (after reading the line in, since
a store allocates it), then the finiteness proof and the update read it back. Here each
block of the gradient stays in a stack buffer from the moment its register tile is stored
until the optimizer has applied it, so only the parameters and the optimizer state travel.
The register tiles (``gemm._panel``) and the reduction chunks (``gemm.tn_chunk``) are those of
``gemm``'s threaded ``A.T @ B``, and the element formulas ``updates``' (``_sgd_*``,
``_adam``), so the result is bit for bit that of ``matmul_tn(..., threaded=True)`` followed
by ``sgd_range`` / ``adam_range`` (tests/test_gradient_step.py); only the blocking and the
packing differ.

Nothing is checked here: the caller proves the step finite first (``bounds.py``, from
``gradient_bound``: the gradient itself never exists in memory to be measured).
"""
import math

from numba import njit, prange
from numba.extending import overload

from ..activations import ADAM, SGD

from .bounds import max_abs
from .fpmode import fp_adopt, fp_mode
from .gemm import _blas_wins, _panel, tn_chunk, tn_packs, tn_splits
from .simd import SCRATCH, lanes, stack_scratch, vload, vstore
from .uses import uses_optimizer
from .updates import _adam, _adam_scalars, _as_dtype_of, _sgd_momentum, _sgd_nesterov, \
    _sgd_plain
from .views import borrowed_1d, borrowed_flat

#: Optimizer modes of the fused step.
PLAIN, MOMENTUM, NESTEROV, ADAM_MODE = range(4)


def _apply_rows(p, s0, s1, G, rows, cols, ldg, o, ld, mode, x0, x1, x2, x3, x4, x5, x6, x7,
                x8, uses):
    """The optimizer step on ``rows`` x ``cols`` parameters starting at flat offset ``o``
    (row stride ``ld``), gradients from ``G`` (row stride ``ldg``). ``x0..x8``: the mode's
    scalars in the parameters' dtype (``_scalars``). ``uses`` (``uses.py``): compile only
    its optimizer's modes."""
    raise NotImplementedError("call from @njit code")


@overload(_apply_rows, inline="always", jit_options={"cache": True, "error_model": "numpy"})
def _apply_rows_impl(p, s0, s1, G, rows, cols, ldg, o, ld, mode, x0, x1, x2, x3, x4, x5, x6,
                     x7, x8, uses):
    sgd, adam = uses_optimizer(uses, SGD), uses_optimizer(uses, ADAM)

    def impl(p, s0, s1, G, rows, cols, ldg, o, ld, mode, x0, x1, x2, x3, x4, x5, x6, x7, x8,
             uses):
        for i in range(rows):
            pr = borrowed_1d(p, o + i * ld, cols)
            g = borrowed_1d(G, i * ldg, cols)
            if sgd and mode == PLAIN:
                for k in range(cols):
                    pr[k] = _sgd_plain(pr[k], g[k], x0, x2)
            elif sgd and mode == MOMENTUM:
                v = borrowed_1d(s0, o + i * ld, cols)
                for k in range(cols):
                    pr[k], v[k] = _sgd_momentum(pr[k], g[k], v[k], x0, x1, x2)
            elif sgd and mode == NESTEROV:
                v = borrowed_1d(s0, o + i * ld, cols)
                for k in range(cols):
                    pr[k], v[k] = _sgd_nesterov(pr[k], g[k], v[k], x0, x1, x2)
            elif adam and mode == ADAM_MODE:
                m = borrowed_1d(s0, o + i * ld, cols)
                v = borrowed_1d(s1, o + i * ld, cols)
                for k in range(cols):
                    pr[k], m[k], v[k] = _adam(pr[k], g[k], m[k], v[k], x0, x1, x2, x3, x4,
                                              x5, x6, x7, x8)
    return impl


#: A task's output rows: one tall register tile (``gemm._panel``'s 8-row tiles) or four,
#: its gradient block that many rows by ``SCRATCH / rows`` columns. Four where the packed
#: delta outgrows a core's L2 share (``TALL_MIN_BYTES``) and the batch is large: each task
#: then reads it once for 32 rows instead of 8. Measured, the layers' steps over two threads
#: in one process: wide net (batch 256) 13.9 -> 12.4 ms, 1024-4096-1024 at batch 256
#: 12.6 -> 12.0; at batch 32 to 128 the taller blocks were slower there (2.9 -> 3.2 ms at
#: 32: the update then walks each parameter row in shorter pieces), and so they were on
#: 512-wide layers at batch 256 (1.47 -> 1.53).
TASK_ROWS = 8
TALL_TASK_ROWS = 32
TALL_MIN_ROWS = 256
TALL_MIN_BYTES = 1 << 19


@njit(cache=True, error_model="numpy", inline='always')
def _pack_panel(b, R, N, q, bp):
    """Column panel ``q`` (two vectors wide, the last maybe narrower: ``wq`` columns) of
    ``b (R, N)`` into ``bp`` from offset ``q * R * 2 lanes``, ``wq`` elements to a row: the
    panels then take exactly ``R * N`` elements, and each is read front to back."""
    V = lanes(b)
    W = 2 * V
    j0 = q * W
    wq = min(W, N - j0)
    o = q * R * W
    for r in range(R):
        vstore(bp, o + r * wq, wq, vload(b, r * N + j0, wq))
        if wq > V:
            vstore(bp, o + r * wq + V, wq - V, vload(b, r * N + j0 + V, wq - V))


@njit(cache=True, error_model="numpy", inline='always')
def _task(a, bp, p, s0, s1, M, R, N, KC, tr, task, mode, x0, x1, x2, x3, x4, x5, x6, x7, x8,
          uses):
    """Rows ``tr`` by up to ``CC`` columns of ``A.T @ B`` into a stack buffer, then
    their optimizer step. Tasks go row block by row block, so each thread updates one run
    of whole rows (parameters and state read in long sequential stretches: updated in small
    strided pieces, column panel by panel, the same work ran slower than the separate
    passes). ``bp``: B's packed panels (``_pack_panel``); a's block is packed here, a
    reduction chunk at a time. ``KC``: the reduction chunks of ``gemm``'s threaded
    ``A.T @ B``, so the sums are grouped, and rounded, as there. Tasks write disjoint
    parameters and state."""
    V = lanes(a)
    W = 2 * V
    G = stack_scratch(a)  # the block's gradient, CC to a row
    Ap = stack_scratch(a)  # a chunk of a's block, tr to a reduction row
    CC = G.shape[0] // tr
    nch = (N + CC - 1) // CC
    ib = task // nch
    i0 = ib * tr
    c0 = (task - ib * nch) * CC
    rows = min(tr, M - i0)
    cols = min(CC, N - c0)
    for k0 in range(0, R, KC):
        kc = min(KC, R - k0)
        for r in range(kc):
            for v in range(0, rows, V):
                vstore(Ap, r * tr + v, rows - v, vload(a, (k0 + r) * M + i0 + v, rows - v))
        for j in range(0, cols, W):
            q = (c0 + j) // W
            wq = min(W, N - q * W)
            _panel(Ap, 0, 1, tr, bp, q * R * W + k0 * wq, wq, G, j, CC, rows, kc, cols - j,
                   k0 > 0, True)
    _apply_rows(p, s0, s1, G, rows, cols, CC, i0 * N + c0, N, mode, x0, x1, x2, x3, x4, x5,
                x6, x7, x8, uses)


@njit(cache=True, error_model="numpy", parallel=True)
def _tasks_parallel(a, b, bp, p, s0, s1, M, R, N, KC, tr, n, mode, x0, x1, x2, x3, x4, x5,
                    x6, x7, x8, uses):
    W = 2 * lanes(a)
    for q in prange((N + W - 1) // W):  # copies only: no arithmetic, no mode
        _pack_panel(b, R, N, q, bp)
    fp = fp_mode()  # the caller's denormal mode, for every task (fpmode.py)
    for task in prange(n):
        saved = fp_adopt(fp)
        _task(a, bp, p, s0, s1, M, R, N, KC, tr, task, mode, x0, x1, x2, x3, x4, x5, x6, x7,
              x8, uses)
        fp_adopt(saved)


@njit(cache=True, error_model="numpy", inline='always')
def _scalars(W, mode, lr, momentum, weight_decay, beta1, beta2, eps, decoupled, t):
    """The element formulas' scalars in W's dtype, as ``sgd_range`` / ``adam_range`` make
    them (nine slots; the SGD modes use the first three: lr, momentum, weight decay)."""
    if mode == ADAM_MODE:
        return _adam_scalars(W, t, lr, beta1, beta2, eps, weight_decay, decoupled)
    z = _as_dtype_of(W, 0.0)
    return (_as_dtype_of(W, lr), _as_dtype_of(W, momentum), _as_dtype_of(W, weight_decay),
            z, z, z, z, z, z)


@njit(cache=True, error_model="numpy")
def weight_gradient_step(A_prev, delta, W, S0, S1, mode, lr, momentum, weight_decay, beta1,
                         beta2, eps, decoupled, t, work, threaded=None, uses=None):
    """``W`` takes one optimizer step with the gradient ``A_prev.T @ delta``, which is never
    stored. ``mode``: PLAIN (``W -= lr * (g + wd W)``), MOMENTUM or NESTEROV (velocity
    ``S0``), ADAM_MODE (moments ``S0``, ``S1``; ``decoupled``: AdamW; ``t``: this step's
    1-based count): PyTorch's formulas as in ``updates.py``.

    Parameters
    ----------
    A_prev : ndarray (n, n_in)
        Activations of the layer below (C-contiguous).
    delta : ndarray (n, n_out)
        This layer's delta, scaled for the mean loss.
    W, S0, S1 : ndarray (n_in, n_out)
        Weights and optimizer state, updated in place (unused state: any array of the
        same shape, e.g. ``W`` itself).
    mode : int
        PLAIN, MOMENTUM, NESTEROV or ADAM_MODE.
    lr, momentum, weight_decay, beta1, beta2, eps : float
        Hyper-parameters (those the mode does not use are ignored).
    decoupled : bool
        AdamW's decoupled weight decay.
    t : int
        Adam's 1-based step count.
    work : ndarray (at least n * n_out,)
        Workspace (delta's column panels, packed), 1-D, W's dtype.
    threaded : bool or None
        Spread the blocks over Numba's threads (None, the default, compiles no threaded
        code; ``threaded_weight_gradient_step`` compiles the threaded code only).
    uses : Uses or None
        Compile only the modes of this optimizer (``uses.py``; None, the default: all).
    """
    if threaded is not None and threaded:
        threaded_weight_gradient_step(A_prev, delta, W, S0, S1, mode, lr, momentum,
                                      weight_decay, beta1, beta2, eps, decoupled, t, work, uses)
        return
    a, b, bp, p, s0, s1, M, R, N, KC, tr, n, x0, x1, x2, x3, x4, x5, x6, x7, x8 = _prologue(
        A_prev, delta, W, S0, S1, mode, lr, momentum, weight_decay, beta1, beta2, eps,
        decoupled, t, work)
    V = lanes(a)
    for q in range((N + 2 * V - 1) // (2 * V)):
        _pack_panel(b, R, N, q, bp)
    for task in range(n):
        _task(a, bp, p, s0, s1, M, R, N, KC, tr, task, mode, x0, x1, x2, x3, x4, x5, x6, x7,
              x8, uses)


@njit(cache=True, error_model="numpy")
def threaded_weight_gradient_step(A_prev, delta, W, S0, S1, mode, lr, momentum, weight_decay,
                                  beta1, beta2, eps, decoupled, t, work, uses=None):
    """``weight_gradient_step(..., threaded=True)``, compiling the threaded path only (the
    training driver's entry)."""
    a, b, bp, p, s0, s1, M, R, N, KC, tr, n, x0, x1, x2, x3, x4, x5, x6, x7, x8 = _prologue(
        A_prev, delta, W, S0, S1, mode, lr, momentum, weight_decay, beta1, beta2, eps,
        decoupled, t, work)
    _tasks_parallel(a, b, bp, p, s0, s1, M, R, N, KC, tr, n, mode, x0, x1, x2, x3, x4, x5, x6,
                    x7, x8, uses)


@njit(cache=True, error_model="numpy", inline='always')
def _prologue(A_prev, delta, W, S0, S1, mode, lr, momentum, weight_decay, beta1, beta2, eps,
              decoupled, t, work):
    """Both paths' checks, flat views, scalars and blocking."""
    R, M = A_prev.shape
    N = delta.shape[1]
    if R == 0 or M == 0 or N == 0:
        raise ValueError("weight_gradient_step: empty A_prev or delta")
    if work.shape[0] < R * N:
        raise ValueError("weight_gradient_step: work holds fewer than n * n_out elements")
    a, b, bp = borrowed_flat(A_prev), borrowed_flat(delta), work
    p, s0, s1 = borrowed_flat(W), borrowed_flat(S0), borrowed_flat(S1)
    x0, x1, x2, x3, x4, x5, x6, x7, x8 = _scalars(W, mode, lr, momentum, weight_decay, beta1,
                                                  beta2, eps, decoupled, t)
    V = lanes(a)
    KC = tn_chunk(tn_packs(M, V), V)  # the threaded A.T @ B's sums, so its rounding
    tall = R >= TALL_MIN_ROWS and R * N * (64 // V) > TALL_MIN_BYTES
    # (a's packed chunk, KC x tr, must fit its stack buffer: float64's unpacked chunks of 512
    # leave room for 16 rows)
    tr = max(TASK_ROWS, min(TALL_TASK_ROWS, SCRATCH // KC) // 8 * 8) if tall else TASK_ROWS
    CC = SCRATCH // tr
    n = ((M + tr - 1) // tr) * ((N + CC - 1) // CC)
    return a, b, bp, p, s0, s1, M, R, N, KC, tr, n, x0, x1, x2, x3, x4, x5, x6, x7, x8


@njit(cache=True, error_model="numpy")
def gradient_bound(A_prev, delta):
    """An upper bound of ``max |A_prev.T @ delta|`` as float64 without the product:
    ``sum_r max_i |A_prev[r, i]| * max_j |delta[r, j]|``, widened by the rounding of a sum of
    ``n`` products, so no stored value of the product exceeds it. inf when an input is not
    finite. A_prev (n, n_in), delta (n, n_out), C-contiguous."""
    R, M = A_prev.shape
    N = delta.shape[1]
    a, d = borrowed_flat(A_prev), borrowed_flat(delta)
    total = 0.0
    for r in range(R):
        am, dm = max_abs(borrowed_1d(a, r * M, M)), max_abs(borrowed_1d(d, r * N, N))
        if am == math.inf or dm == math.inf:  # (inf * 0 would give NaN, which max() drops)
            return math.inf
        total += am * dm
    # each of the n rounded multiply-adds (float32 unit 2^-24) grows the sum by at most a
    # factor 1 + 2^-23, and (1 + 2^-23)^n <= 1 + n 2^-22 for n below 2^21
    return total * (1.0 + R * 2.0 ** -22)


@njit(cache=True, error_model="numpy", inline='always')
def fuses(R, M, N, like, threaded):
    """Whether the training driver fuses a layer's gradient into its step: where its
    ``A.T @ B`` (R rows, M x N output) would be ``gemm``'s own threaded product, whose
    rounding ``weight_gradient_step`` reproduces (BLAS's and the one-thread path's chunks
    differ). ``like``: an array of the parameters' dtype."""
    if threaded is None or not threaded:
        return False
    return tn_splits(R, M, N, like) and not _blas_wins(R * M * N, like, threaded)

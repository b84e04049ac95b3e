"""Row-wise bias + activation and the activation-derivative product, dispatched by code.

Numba cannot cache a kernel that receives a compiled function as an argument, so the dispatch
is an explicit branch per activation code. Each branch sits outside its inner loop, so every
loop is a straight, vectorisable run over one row. The 2-D kernels the drivers use take an
optional ``uses`` (``uses.py``): the loops of activations outside it are not compiled.
"""
from numba import njit, prange, types
from numba.extending import overload

from ..activations import (ELU, GELU, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, SOFTPLUS,
                           TANH)
from .fpmode import fp_adopt, fp_mode
from .views import borrowed_flat
from .vecmath import exp_shifted
from .vecmath import (elu_fast, gelu_fast, gelu_grad_fast,  # noqa: F401
                      sigmoid_fast, softplus_fast, softplus_grad_fast,
                      tanh_fast)  # (named in the generated loops' source below)
from .scalar import (elu, elu_grad, gelu, gelu_grad, identity, leaky_relu, leaky_relu_grad,
                     relu, relu_grad, sigmoid, sigmoid_grad, softplus, softplus_grad, tanh,
                     tanh_grad)
from .uses import uses_activation


@njit(cache=True, error_model="numpy")
def softmax_row(z, a):
    """a = softmax(z) for one row, shifted by the row max so exp never overflows.

    Parameters
    ----------
    z : ndarray (m,)
        Logits of one row (read only).
    a : ndarray (m,)
        Output: the probabilities (may not alias z).
    """
    m = z.shape[0]
    zmax = z[0]
    for j in range(m):
        if z[j] > zmax:
            zmax = z[j]
    for j in range(m):
        a[j] = exp_shifted(z[j] - zmax)
    total = 0.0
    for j in range(m):
        total += a[j]
    inv = 1.0 / total
    for j in range(m):
        a[j] *= inv


@njit(cache=True, error_model="numpy")
def bias_activation_row(z, b, code, a):
    """z += b, then a = f(z), for one row (1-D, same length). z is overwritten."""
    m = z.shape[0]
    if code == SOFTMAX:
        for j in range(m):
            z[j] += b[j]
        softmax_row(z, a)
    elif code == IDENTITY:
        for j in range(m):
            z[j] += b[j]
            a[j] = z[j]
    elif code == RELU:
        for j in range(m):
            z[j] += b[j]
            a[j] = relu(z[j])
    elif code == SIGMOID:
        for j in range(m):
            z[j] += b[j]
            a[j] = sigmoid(z[j])
    elif code == TANH:
        for j in range(m):
            z[j] += b[j]
            a[j] = tanh(z[j])
    elif code == LEAKY_RELU:
        for j in range(m):
            z[j] += b[j]
            a[j] = leaky_relu(z[j])
    elif code == ELU:
        for j in range(m):
            z[j] += b[j]
            a[j] = elu(z[j])
    elif code == SOFTPLUS:
        for j in range(m):
            z[j] += b[j]
            a[j] = softplus(z[j])
    elif code == GELU:
        for j in range(m):
            z[j] += b[j]
            a[j] = gelu(z[j])


def _exp_all(A):
    """A = exp_shifted(A) elementwise, in place."""


@overload(_exp_all, jit_options={"cache": True, "error_model": "numpy"})
def _exp_all_impl(A):
    if isinstance(A, types.Array) and A.layout == "C":
        def impl(A):
            # one loop over every element: it vectorises even when rows are shorter than a
            # vector (10 classes: all of a row's exps fell into the scalar remainder loop)
            a = borrowed_flat(A)
            for k in range(a.shape[0]):
                a[k] = exp_shifted(a[k])
        return impl

    def impl(A):
        for i in range(A.shape[0]):
            for j in range(A.shape[1]):
                A[i, j] = exp_shifted(A[i, j])
    return impl


@njit(cache=True, error_model="numpy")
def _softmax_rows(Z, b, A):
    """Z += b, then A = softmax(Z) row by row, shifted by the row max (as softmax_row)."""
    n, m = Z.shape
    for i in range(n):
        zmax = Z[i, 0] + b[0]  # typed as Z: float32 rows take float32 exps
        for j in range(m):
            z = Z[i, j] + b[j]
            Z[i, j] = z
            if z > zmax:
                zmax = z
        for j in range(m):
            A[i, j] = Z[i, j] - zmax
    # the exps in their own loop: no reduction in it, so it vectorises (32x10: 1.70 -> see
    # docs/performance.md)
    _exp_all(A)
    for i in range(n):
        total = 0.0
        for j in range(m):
            total += A[i, j]
        inv = 1.0 / total
        for j in range(m):
            A[i, j] *= inv


# (generated source has no file to cache from; the kernels they are inlined into are cached)
_GENERATED = {"error_model": "numpy"}

# The loops of the 2-D kernels, generated per set of activations (``uses``): the source of
# each kernel's body holds one branch per activation in the set, so unused activations are
# never typed or compiled. One generated function per kernel and set: branches gated one by
# one through overloads measured slower to compile than the plain all-branch kernels.
# (the ``*_fast`` forms: branch-free versions that vectorise, within 1-3 ulp of the table's;
# vecmath.py)
_FORWARD = {IDENTITY: "identity", RELU: "relu", SIGMOID: "sigmoid_fast", TANH: "tanh_fast",
            LEAKY_RELU: "leaky_relu", ELU: "elu_fast", SOFTPLUS: "softplus_fast",
            GELU: "gelu_fast"}
_GRAD = {RELU: "relu_grad", SIGMOID: "sigmoid_grad", TANH: "tanh_grad",
         LEAKY_RELU: "leaky_relu_grad", ELU: "elu_grad", SOFTPLUS: "softplus_grad_fast",
         GELU: "gelu_grad_fast"}
_ALL_CODES = tuple(range(SOFTMAX + 1))


def _generate(name, head, branches, codes, kernel):
    """Compile ``def name(...)`` from ``head`` (its first lines), one ``if code == C:``
    branch per code in ``codes`` that has a body in ``branches``, and an ``else`` raising
    ValueError for any other code (unknown, or left out of ``uses``)."""
    lines = [head]
    first = True
    for code in codes:
        if code in branches:
            lines.append(f"    {'if' if first else 'elif'} code == {code}:")
            lines.extend("        " + ln for ln in branches[code].splitlines())
            first = False
    lines.append("    else:" if not first else "    if True:")
    lines.append(f"        raise ValueError('{kernel}: activation code unknown or not in uses')")
    namespace = {}
    exec("\n".join(lines) + "\n", globals(), namespace)  # noqa: S102 (fixed templates)
    return namespace[name]


# ReLU, the common hidden activation, also has loops of its own below. The table's ``relu`` and
# ``relu_grad`` return float64 constants (``0.0``, ``1.0``), so through the table a float32
# loop converts every element to float64 and back, at half the vector width. These loops give
# the same values in the arrays' dtype: ``z if z > 0 else 0`` is what storing the table's
# float64 result gives, and ``d if z > 0 else d * 0`` is ``d * relu_grad`` exactly (d * 1 is
# d; d * 0 keeps its sign, and inf or NaN give NaN) -- tests/test_kernels.py compares them bit
# for bit with loops over the table's functions. Float32 32x128, one process: the delta's
# product 0.35 -> 0.09 us, bias + ReLU (now one pass) 0.27 -> 0.19 us.
_RELU_FORWARD = ("zero = Z.dtype.type(0)\n"
                 "for i in range(n):\n    for j in range(m):\n"
                 "        z = Z[i, j] + b[j]\n        Z[i, j] = z\n"
                 "        A[i, j] = z if z > 0 else zero")
_RELU_GRAD = ("zero = D.dtype.type(0)\n"
              "for i in range(n):\n    for j in range(m):\n"
              "        d = D[i, j]\n        D[i, j] = d if Z[i, j] > 0 else d * zero")


def _bias_activation_body(codes):
    loop = ("for i in range(n):\n    for j in range(m):\n        Z[i, j] += b[j]\n"
            "for i in range(n):\n    for j in range(m):\n        A[i, j] = {f}(Z[i, j])")
    branches = {c: loop.format(f=f) for c, f in _FORWARD.items()}
    branches[RELU] = _RELU_FORWARD
    head = ("def body(Z, b, code, A, uses):\n"
            "    n, m = Z.shape")
    if SOFTMAX in codes:
        head += ("\n    if code == SOFTMAX:\n"
                 "        _softmax_rows(Z, b, A)\n"
                 "        return")
    return _generate("body", head, branches, codes, "bias_activation")


def _grad_body(codes):
    loop = ("for i in range(n):\n    for j in range(m):\n"
            "        D[i, j] *= {g}(Z[i, j], A[i, j])")
    branches = {c: loop.format(g=g) for c, g in _GRAD.items()}
    branches[RELU] = _RELU_GRAD
    branches[IDENTITY] = "pass  # f' = 1"
    head = ("def body(Z, A, code, D, uses):\n"
            "    n, m = D.shape")
    return _generate("body", head, branches, codes, "mul_activation_grad_2d")


def _codes_in(uses):
    return tuple(c for c in _ALL_CODES if uses_activation(uses, c))


def _bias_activation_impl(Z, b, code, A, uses):
    raise NotImplementedError("call from @njit code")


@overload(_bias_activation_impl, jit_options=_GENERATED)
def _bias_activation_overload(Z, b, code, A, uses):
    return _bias_activation_body(_codes_in(uses))


def _grad_impl(Z, A, code, D, uses):
    raise NotImplementedError("call from @njit code")


@overload(_grad_impl, jit_options=_GENERATED)
def _grad_overload(Z, A, code, D, uses):
    return _grad_body(_codes_in(uses))


# -- threaded nets: transcendental passes split over the threads ------------------------------

#: Elements a threaded net's activation pass needs before it splits its rows over the
#: threads, for the two activations whose loops cost most: softplus (a series for log1p)
#: and GELU (a series for erfc), forward and derivative (32,768 elements, us: float32
#: softplus 27 and 16, GELU 64 and 19; float64 99 and 39, 166 and 46; against float32 tanh's
#: 21 forward and ReLU's 2.5). mnist's layers hold 32,768 and 16,384 elements. Splitting the
#: one-exp activations (tanh, sigmoid, ELU) too gained 0-3% on mnist fits, less than what the
#: split passes cost to compile (about 2.9 s for every threaded net that holds them: uses.py's
#: EXP_ACTIVATIONS keeps those nets without), and splitting ELU's derivative lost 1-3%.
PARALLEL_MIN_ACT_ELEMENTS = 1 << 14
_ACT_TASK_ELEMENTS = 1 << 13  # elements per task of a split pass (rows rounded down)
_SPLIT = (SOFTPLUS, GELU)


def _split_activation(code, n_elements):
    """Whether a threaded net splits a pass of this activation."""
    raise NotImplementedError("call from @njit code")


@overload(_split_activation, inline="always")
def _split_activation_overload(code, n_elements):
    return lambda code, n_elements: (n_elements >= PARALLEL_MIN_ACT_ELEMENTS and
                                     (code == SOFTPLUS or code == GELU))


def _any_of(uses, codes):
    """Typing-time: whether ``uses`` holds any of ``codes``."""
    return any(uses_activation(uses, c) for c in codes)


@njit(cache=True, parallel=True, error_model="numpy")
def _bias_activation_parallel(Z, b, code, A, uses):
    """``bias_activation`` over blocks of rows (elementwise: the same bits)."""
    n, m = Z.shape
    rows = max(1, _ACT_TASK_ELEMENTS // max(m, 1))  # a fixed split: no thread count
    mode = fp_mode()  # the caller's denormal mode, for every task (fpmode.py)
    for t in prange((n + rows - 1) // rows):       # (get_num_threads would stop caching)
        saved = fp_adopt(mode)
        r0, r1 = t * rows, min(n, (t + 1) * rows)
        _bias_activation_impl(Z[r0:r1], b, code, A[r0:r1], uses)
        fp_adopt(saved)


@njit(cache=True, parallel=True, error_model="numpy")
def _grad_parallel(Z, A, code, D, uses):
    """``mul_activation_grad_2d`` over blocks of rows (the same bits)."""
    n, m = D.shape
    rows = max(1, _ACT_TASK_ELEMENTS // max(m, 1))  # a fixed split: no thread count
    mode = fp_mode()
    for t in prange((n + rows - 1) // rows):       # (get_num_threads would stop caching)
        saved = fp_adopt(mode)
        r0, r1 = t * rows, min(n, (t + 1) * rows)
        _grad_impl(Z[r0:r1], A[r0:r1], code, D[r0:r1], uses)
        fp_adopt(saved)


def _split_if_used(parallel, serial):
    """A stub ``run(P, Q, code, R, uses)`` calling ``parallel`` where ``uses`` holds softplus
    or GELU and ``serial`` elsewhere: a net without them compiles no parallel pass
    (EXP_ACTIVATIONS: uses.py)."""
    def run(P, Q, code, R, uses):
        raise NotImplementedError("call from @njit code")

    @overload(run, inline="always")
    def _run(P, Q, code, R, uses):
        fn = parallel if _any_of(uses, _SPLIT) else serial
        return lambda P, Q, code, R, uses: fn(P, Q, code, R, uses)
    return run


_bias_activation_split = _split_if_used(_bias_activation_parallel, _bias_activation_impl)
_grad_split = _split_if_used(_grad_parallel, _grad_impl)


@njit(cache=True, error_model="numpy")
def bias_activation(Z, b, code, A, uses=None, threaded=None):
    """Z += b (broadcast over rows), A = f(Z). Z, A: (n, m) C-contiguous; b: (m,).

    The loops index the 2-D arrays directly: a per-row view costs a reference-count round
    trip (about 60 ns, more than the row's arithmetic at these widths). The branch on the
    code sits outside the loops, so every inner loop is one straight, vectorisable run.

    Parameters
    ----------
    Z : ndarray (n, m)
        Pre-activations ``A_prev @ W``; overwritten with ``Z + b``.
    b : ndarray (m,)
        Bias, broadcast over the rows.
    code : int
        Activation code from ``fastbp.kernels.activations`` (softmax works row-wise).
    A : ndarray (n, m)
        Output: ``f(Z + b)``.
    uses : Uses or None
        Compile only the loops of these activations (``uses.py``); a code outside the set
        raises ValueError. None (the default): every activation.
    threaded : bool or None
        True: a softplus or GELU pass over at least ``PARALLEL_MIN_ACT_ELEMENTS`` elements
        splits its rows over Numba's threads (the same values). None, the default,
        compiles no threaded code.
    """
    if threaded is not None and threaded and _split_activation(code, Z.size):
        _bias_activation_split(Z, b, code, A, uses)
    else:
        _bias_activation_impl(Z, b, code, A, uses)


@njit(cache=True, error_model="numpy")
def mul_activation_grad_2d(Z, A, code, D, uses=None, threaded=None):
    """D *= f'(Z) elementwise over (n, m) arrays (2-D form of mul_activation_grad, no
    per-row views); not for softmax. ``uses`` and ``threaded``: as for
    ``bias_activation``."""
    if threaded is not None and threaded and _split_activation(code, D.size):
        _grad_split(Z, A, code, D, uses)
    else:
        _grad_impl(Z, A, code, D, uses)


@njit(cache=True, error_model="numpy")
def mul_activation_grad(z, a, code, d):
    """d *= f'(z) elementwise, f' from (z, a). 1-D arrays of equal length; not for softmax.

    Parameters
    ----------
    z : ndarray (m,)
        Pre-activations of the layer.
    a : ndarray (m,)
        Activations ``f(z)``.
    code : int
        Elementwise activation code (not softmax).
    d : ndarray (m,)
        Multiplied in place by ``f'(z)``.
    """
    n = d.shape[0]
    if code == RELU:
        for k in range(n):
            d[k] *= relu_grad(z[k], a[k])
    elif code == SIGMOID:
        for k in range(n):
            d[k] *= sigmoid_grad(z[k], a[k])
    elif code == TANH:
        for k in range(n):
            d[k] *= tanh_grad(z[k], a[k])
    elif code == LEAKY_RELU:
        for k in range(n):
            d[k] *= leaky_relu_grad(z[k], a[k])
    elif code == ELU:
        for k in range(n):
            d[k] *= elu_grad(z[k], a[k])
    elif code == SOFTPLUS:
        for k in range(n):
            d[k] *= softplus_grad(z[k], a[k])
    elif code == GELU:
        for k in range(n):
            d[k] *= gelu_grad(z[k], a[k])
    # IDENTITY: f' = 1, nothing to do.

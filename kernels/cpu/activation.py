"""Row-wise bias + activation and the activation-derivative product, dispatched by code.

Numba cannot cache a kernel that receives a compiled function as an argument, so the dispatch
is an explicit branch per activation code. Each branch sits outside its inner loop, so every
loop is a straight, vectorisable run over one row. The 2-D kernels the drivers use take an
optional ``uses`` (``uses.py``): the loops of activations outside it are not compiled.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ..activations import (ELU, GELU, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, SOFTPLUS,
                           TANH)
from .views import borrowed_flat
from .scalar import (elu, elu_grad, gelu, gelu_grad, identity, leaky_relu, leaky_relu_grad,
                     relu, relu_grad, sigmoid, sigmoid_grad, softplus, softplus_grad, tanh,
                     tanh_grad)
from .uses import uses_activation


@intrinsic
def _int32_bits_as_float32(typingctx, i):
    """Reinterpret the low 32 bits of an integer as a float32 (a bitcast; vectorises)."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width > 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())
    return types.float32(i), codegen


def exp_shifted(x):
    """exp(x) for x <= 0 (softmax's ``z - max(z)``). float64: math.exp."""
    return math.exp(x)


@overload(exp_shifted, jit_options={"cache": True})
def _exp_shifted_overload(x):
    """float32: Cephes expf (range reduction by ln 2, degree-6 polynomial, 2**n by building
    the exponent bits): within 2 ulp of math.exp, branch-free, so the softmax loops vectorise
    (libm's expf is a call per element). Below -87.3 it returns ~1.2e-38 instead of a
    denormal or 0: nothing a softmax row sum (>= 1) can see."""
    if x == types.float32:
        log2e = np.float32(1.44269504088896341)
        c1 = np.float32(0.693359375)
        c2 = np.float32(-2.12194440e-4)
        p0 = np.float32(1.9875691500e-4)
        p1 = np.float32(1.3981999507e-3)
        p2 = np.float32(8.3334519073e-3)
        p3 = np.float32(4.1665795894e-2)
        p4 = np.float32(1.6666665459e-1)
        p5 = np.float32(5.0000001201e-1)
        lo = np.float32(-87.3)
        half = np.float32(0.5)
        one = np.float32(1.0)

        def impl(x):
            x = max(x, lo)
            fx = np.float32(math.floor(x * log2e + half))
            r = x - fx * c1 - fx * c2
            r2 = r * r
            y = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * r2 + r + one
            return y * _int32_bits_as_float32((np.int32(fx) + 127) << 23)
        return impl
    if isinstance(x, types.Float):
        return lambda x: math.exp(x)
    return None


def tanh_fast(x):
    """tanh(x); float32 without a call per element (see the overload). float64: the table's."""
    return tanh(x)


@overload(tanh_fast, jit_options={"cache": True})
def _tanh_fast_overload(x):
    """float32: Cephes tanhf, branch-free so the loops vectorise: ``x`` itself below 0.0004
    (where tanh(x) rounds to x), an odd polynomial below 0.625, else
    ``(1 - e) / (1 + e)`` with ``e = exp(-2|x|)`` (``exp_shifted``) and x's sign. Within 2 ulp
    of the table's float64 ``math.tanh`` rounded to float32 (tests/test_kernels.py: a dense
    grid on [-20, 20] and logarithmic grids to 1e-30), exactly its value for +-0 and +-inf,
    NaN for NaN; 26x faster than libm's call per element (32,768 elements: 465 -> 18
    us). Other dtypes use the table's function."""
    if x == types.float32:
        c0 = np.float32(-5.70498872745e-3)
        c1 = np.float32(2.06390887954e-2)
        c2 = np.float32(-5.37397155531e-2)
        c3 = np.float32(1.33314422036e-1)
        c4 = np.float32(-3.33332819422e-1)
        tiny = np.float32(0.0004)
        mid = np.float32(0.625)
        one = np.float32(1.0)

        def impl(x):
            ax = abs(x)
            e = exp_shifted(-(ax + ax))  # in (0, 1]: no overflow for any x
            big = (one - e) / (one + e)
            s = x * x
            small = ((((c0 * s + c1) * s + c2) * s + c3) * s + c4) * s * x + x
            far = big if x >= 0 else -big
            return x if ax < tiny else (small if ax < mid else far)
        return impl
    if isinstance(x, types.Float):
        return lambda x: tanh(x)
    return None


def sigmoid_fast(x):
    """sigmoid(x); float32 without a call per element (see the overload). float64: the
    table's."""
    return sigmoid(x)


@overload(sigmoid_fast, jit_options={"cache": True})
def _sigmoid_fast_overload(x):
    """float32: the table's two-sided form, ``1 / (1 + e)`` for x >= 0 and ``e / (1 + e)``
    below, with ``e = exp(-|x|)`` from ``exp_shifted`` (branch-free, so the loops vectorise),
    flushed to 0 below -87.3 (where the exact value is at most 1.22e-38). Within 2 ulp of the
    table (float64 ``math.exp``, rounded) above that, exactly its value for +-0 and +-inf,
    NaN for NaN; 32,768 elements: 143 -> 13 us. Other dtypes use the table's function."""
    if x == types.float32:
        lo = np.float32(-87.3)
        zero = np.float32(0.0)
        one = np.float32(1.0)

        def impl(x):
            t = -abs(x)
            e = exp_shifted(t)
            e = zero if t < lo else e
            return one / (one + e) if x >= 0 else e / (one + e)
        return impl
    if isinstance(x, types.Float):
        return lambda x: sigmoid(x)
    return None


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
# (tanh and sigmoid: float32 forms that vectorise, within 1-2 ulp of the table's; see above)
_FORWARD = {IDENTITY: "identity", RELU: "relu", SIGMOID: "sigmoid_fast", TANH: "tanh_fast",
            LEAKY_RELU: "leaky_relu", ELU: "elu", SOFTPLUS: "softplus", GELU: "gelu"}
_GRAD = {RELU: "relu_grad", SIGMOID: "sigmoid_grad", TANH: "tanh_grad",
         LEAKY_RELU: "leaky_relu_grad", ELU: "elu_grad", SOFTPLUS: "softplus_grad",
         GELU: "gelu_grad"}
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


@njit(cache=True, error_model="numpy")
def bias_activation(Z, b, code, A, uses=None):
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
    """
    _bias_activation_impl(Z, b, code, A, uses)


@njit(cache=True, error_model="numpy")
def mul_activation_grad_2d(Z, A, code, D, uses=None):
    """D *= f'(Z) elementwise over (n, m) arrays (2-D form of mul_activation_grad, no
    per-row views); not for softmax. ``uses``: as for ``bias_activation``."""
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

"""Row-wise bias + activation and the activation-derivative product, dispatched by code.

Numba cannot cache a kernel that receives a compiled function as an argument, so the dispatch
is an explicit branch per activation code. Each branch sits outside its inner loop, so every
loop is a straight, vectorisable run over one row.
"""
import math

from numba import njit

from ..activations import (ELU, GELU, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, SOFTPLUS,
                           TANH)
from .scalar import (elu, elu_grad, gelu, gelu_grad, leaky_relu, leaky_relu_grad, relu,
                     relu_grad, sigmoid, sigmoid_grad, softplus, softplus_grad, tanh, tanh_grad)


@njit(cache=True)
def softmax_row(z, a):
    """a = softmax(z) for one row, shifted by the row max so exp never overflows."""
    m = z.shape[0]
    zmax = -math.inf
    for j in range(m):
        if z[j] > zmax:
            zmax = z[j]
    total = 0.0
    for j in range(m):
        e = math.exp(z[j] - zmax)
        a[j] = e
        total += e
    inv = 1.0 / total
    for j in range(m):
        a[j] *= inv


@njit(cache=True)
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


@njit(cache=True)
def _softmax_rows(Z, b, A):
    """Z += b, then A = softmax(Z) row by row, shifted by the row max (as softmax_row)."""
    n, m = Z.shape
    for i in range(n):
        zmax = -math.inf
        for j in range(m):
            z = Z[i, j] + b[j]
            Z[i, j] = z
            if z > zmax:
                zmax = z
        total = 0.0
        for j in range(m):
            e = math.exp(Z[i, j] - zmax)
            A[i, j] = e
            total += e
        inv = 1.0 / total
        for j in range(m):
            A[i, j] *= inv


@njit(cache=True)
def bias_activation(Z, b, code, A):
    """Z += b (broadcast over rows), A = f(Z). Z, A: (n, m) C-contiguous; b: (m,).

    The loops index the 2-D arrays directly: a per-row view costs a reference-count round
    trip (about 60 ns, more than the row's arithmetic at these widths). The branch on the
    code sits outside the loops, so every inner loop is one straight, vectorisable run.
    """
    n, m = Z.shape
    if code == SOFTMAX:
        _softmax_rows(Z, b, A)
        return
    for i in range(n):
        for j in range(m):
            Z[i, j] += b[j]
    if code == IDENTITY:
        for i in range(n):
            for j in range(m):
                A[i, j] = Z[i, j]
    elif code == RELU:
        for i in range(n):
            for j in range(m):
                A[i, j] = relu(Z[i, j])
    elif code == SIGMOID:
        for i in range(n):
            for j in range(m):
                A[i, j] = sigmoid(Z[i, j])
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                A[i, j] = tanh(Z[i, j])
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                A[i, j] = leaky_relu(Z[i, j])
    elif code == ELU:
        for i in range(n):
            for j in range(m):
                A[i, j] = elu(Z[i, j])
    elif code == SOFTPLUS:
        for i in range(n):
            for j in range(m):
                A[i, j] = softplus(Z[i, j])
    elif code == GELU:
        for i in range(n):
            for j in range(m):
                A[i, j] = gelu(Z[i, j])


@njit(cache=True)
def mul_activation_grad_2d(Z, A, code, D):
    """D *= f'(Z) elementwise over (n, m) arrays (2-D form of mul_activation_grad, no
    per-row views); not for softmax."""
    n, m = D.shape
    if code == RELU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= relu_grad(Z[i, j], A[i, j])
    elif code == SIGMOID:
        for i in range(n):
            for j in range(m):
                D[i, j] *= sigmoid_grad(Z[i, j], A[i, j])
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                D[i, j] *= tanh_grad(Z[i, j], A[i, j])
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= leaky_relu_grad(Z[i, j], A[i, j])
    elif code == ELU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= elu_grad(Z[i, j], A[i, j])
    elif code == SOFTPLUS:
        for i in range(n):
            for j in range(m):
                D[i, j] *= softplus_grad(Z[i, j], A[i, j])
    elif code == GELU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= gelu_grad(Z[i, j], A[i, j])
    # IDENTITY: f' = 1, nothing to do.


@njit(cache=True)
def mul_activation_grad(z, a, code, d):
    """d *= f'(z) elementwise, f' from (z, a). 1-D arrays of equal length; not for softmax."""
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

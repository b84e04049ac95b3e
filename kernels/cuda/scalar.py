"""The scalar activation table of ``kernels.activations`` compiled as CUDA device functions.

The math is the very same plain Python the CPU side compiles with ``njit``; here it goes
through ``numba.cuda.jit(device=True)``. Users can call these from their own kernels::

    from numba import cuda
    from fastbp.kernels.cuda.scalar import relu, activate

    @cuda.jit
    def my_kernel(x, out):
        i = cuda.grid(1)
        if i < x.size:
            out[i] = relu(x[i])

``activate(z, code)`` and ``activate_grad(z, a, code)`` dispatch on an activation code
(softmax excluded: it is row-wise).
"""
from numba import cuda

from .. import activations as _math
from ..activations import ELU, GELU, LEAKY_RELU, RELU, SIGMOID, SOFTPLUS, TANH

_dev = cuda.jit(device=True)

identity = _dev(_math.identity)
identity_grad = _dev(_math.identity_grad)
sigmoid = _dev(_math.sigmoid)
sigmoid_grad = _dev(_math.sigmoid_grad)
tanh = _dev(_math.tanh)
tanh_grad = _dev(_math.tanh_grad)
relu = _dev(_math.relu)
relu_grad = _dev(_math.relu_grad)
leaky_relu = _dev(_math.leaky_relu)
leaky_relu_grad = _dev(_math.leaky_relu_grad)
elu = _dev(_math.elu)
elu_grad = _dev(_math.elu_grad)
softplus = _dev(_math.softplus)
softplus_grad = _dev(_math.softplus_grad)
gelu = _dev(_math.gelu)
gelu_grad = _dev(_math.gelu_grad)


@_dev
def activate(z, code):
    """f(z) for an elementwise activation code (IDENTITY and unknown codes: z)."""
    if code == RELU:
        return relu(z)
    if code == SIGMOID:
        return sigmoid(z)
    if code == TANH:
        return tanh(z)
    if code == LEAKY_RELU:
        return leaky_relu(z)
    if code == ELU:
        return elu(z)
    if code == SOFTPLUS:
        return softplus(z)
    if code == GELU:
        return gelu(z)
    return identity(z)


@_dev
def activate_grad(z, a, code):
    """f'(z) from (z, a = f(z)) for an elementwise activation code (IDENTITY: 1)."""
    if code == RELU:
        return relu_grad(z, a)
    if code == SIGMOID:
        return sigmoid_grad(z, a)
    if code == TANH:
        return tanh_grad(z, a)
    if code == LEAKY_RELU:
        return leaky_relu_grad(z, a)
    if code == ELU:
        return elu_grad(z, a)
    if code == SOFTPLUS:
        return softplus_grad(z, a)
    if code == GELU:
        return gelu_grad(z, a)
    return identity_grad(z, a)

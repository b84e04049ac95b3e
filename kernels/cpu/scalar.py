"""The scalar activation table of ``kernels.activations`` compiled for the CPU (``numba.njit``).

These are callable from any ``@njit`` code: ``relu(z)``, ``relu_grad(z, a)`` and so on.
"""
from numba import njit

from .. import activations as _math

# inline: Numba types each body into its caller (one loop per activation) instead of
# compiling, optimising and linking sixteen tiny functions of their own (cold start,
# docs/performance.md, sixth session); called from Python they still compile on their own
_jit = njit(cache=True, fastmath=False, error_model="numpy", inline="always")

identity = _jit(_math.identity)
identity_grad = _jit(_math.identity_grad)
sigmoid = _jit(_math.sigmoid)
sigmoid_grad = _jit(_math.sigmoid_grad)
tanh = _jit(_math.tanh)
tanh_grad = _jit(_math.tanh_grad)
relu = _jit(_math.relu)
relu_grad = _jit(_math.relu_grad)
leaky_relu = _jit(_math.leaky_relu)
leaky_relu_grad = _jit(_math.leaky_relu_grad)
elu = _jit(_math.elu)
elu_grad = _jit(_math.elu_grad)
softplus = _jit(_math.softplus)
softplus_grad = _jit(_math.softplus_grad)
gelu = _jit(_math.gelu)
gelu_grad = _jit(_math.gelu_grad)

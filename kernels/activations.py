"""Scalar activation math, written once for every compile target.

Each activation is a pair of plain Python scalar functions: the forward ``f(z)`` and its
derivative ``f'(z)`` expressed through ``z`` and ``a = f(z)`` (whichever is cheaper, as in
scikit-learn's ``DERIVATIVES``). Nothing here is compiled: ``kernels.cpu`` compiles the table
with ``numba.njit`` and ``kernels.cuda`` with ``numba.cuda.jit(device=True)``, so the CPU and
GPU kernels evaluate the very same expressions.

Softmax is not elementwise; it is handled row-wise by the kernels and only allowed as an output.
"""
import math

# Integer codes: compiled kernels branch on these (outside their inner loops).
IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU, SOFTMAX = range(9)

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


def identity(z):
    return z


def identity_grad(z, a):
    return 1.0


def sigmoid(z):
    # Two branches so that exp never overflows (stable for |z| up to float max).
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def sigmoid_grad(z, a):
    return a * (1.0 - a)


def tanh(z):
    return math.tanh(z)


def tanh_grad(z, a):
    return 1.0 - a * a


def relu(z):
    return z if z > 0 else 0.0


def relu_grad(z, a):
    return 1.0 if z > 0 else 0.0


def leaky_relu(z):
    return z if z > 0 else LEAKY_RELU_SLOPE * z


def leaky_relu_grad(z, a):
    return 1.0 if z > 0 else LEAKY_RELU_SLOPE


def elu(z):
    return z if z > 0 else ELU_ALPHA * math.expm1(z)


def elu_grad(z, a):
    return 1.0 if z > 0 else a + ELU_ALPHA


def softplus(z):
    # log(1 + e^z) without overflow: max(z, 0) + log1p(e^-|z|).
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def softplus_grad(z, a):
    # sigmoid(z), inlined: compiled scalar functions cannot call plain Python ones.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def gelu(z):
    # Exact (erf) GELU, as torch.nn.GELU() with approximate="none".
    return 0.5 * z * (1.0 + math.erf(z * _INV_SQRT2))


def gelu_grad(z, a):
    cdf = 0.5 * (1.0 + math.erf(z * _INV_SQRT2))
    return cdf + z * _INV_SQRT_2PI * math.exp(-0.5 * z * z)


# name -> (code, forward, derivative). The one table every target compiles from.
ACTIVATIONS = {
    "identity": (IDENTITY, identity, identity_grad),
    "sigmoid": (SIGMOID, sigmoid, sigmoid_grad),
    "tanh": (TANH, tanh, tanh_grad),
    "relu": (RELU, relu, relu_grad),
    "leaky_relu": (LEAKY_RELU, leaky_relu, leaky_relu_grad),
    "elu": (ELU, elu, elu_grad),
    "softplus": (SOFTPLUS, softplus, softplus_grad),
    "gelu": (GELU, gelu, gelu_grad),
}
OUTPUT_ACTIVATIONS = dict.fromkeys(ACTIVATIONS, None)
OUTPUT_ACTIVATIONS["softmax"] = None
ACTIVATION_CODES = {name: spec[0] for name, spec in ACTIVATIONS.items()}
ACTIVATION_CODES["softmax"] = SOFTMAX
ACTIVATION_NAMES = {code: name for name, code in ACTIVATION_CODES.items()}

# Losses, averaged over samples as scikit-learn does (see kernels.cpu.loss).
MSE, BINARY_CROSS_ENTROPY, CROSS_ENTROPY = range(3)
LOSS_CODES = {"mse": MSE, "binary_cross_entropy": BINARY_CROSS_ENTROPY,
              "cross_entropy": CROSS_ENTROPY}
LOSS_NAMES = {code: name for name, code in LOSS_CODES.items()}
# Which output activations each loss accepts. mse takes any output (softmax via its Jacobian).
LOSS_OUTPUTS = {
    "mse": tuple(OUTPUT_ACTIVATIONS),
    "binary_cross_entropy": ("sigmoid",),
    "cross_entropy": ("softmax",),
}

# Optimizer codes used by the epoch drivers.
SGD, ADAM = range(2)

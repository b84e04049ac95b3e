"""Each CPU kernel alone, on the layer shapes of the three workloads, float32 and float64.

Shapes are (batch, n_in, n_out) of one layer: "digits" the 64->128 layer at batch 32, "mnist"
784->256 at batch 128, "wide" 2048->2048 at batch 256. The optimizer updates run on the
parameter count of the whole workload network. The kernels are compiled in ``setup``.
"""
import numpy as np

from fastbp.kernels import (adam_range, adam_update, forward, hidden_delta, output_delta,
                            sgd_range, sgd_update, weight_gradients)
from fastbp.kernels.activations import CROSS_ENTROPY, RELU, SOFTMAX
from fastbp.kernels.cpu.gemm import matmul, matmul_nt
from fastbp.kernels.cpu.gradient_step import MOMENTUM, weight_gradient_step

from .common import WORKLOADS, n_weights

LAYERS = {"digits": (32, 64, 128), "mnist": (128, 784, 256), "wide": (256, 2048, 2048)}
DTYPES = ["float32", "float64"]


def _layer(shape, dtype):
    batch, n_in, n_out = LAYERS[shape]
    rng = np.random.default_rng(0)
    A_prev = rng.standard_normal((batch, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) * 0.1
    Z = np.empty((batch, n_out), dtype)
    A = np.empty((batch, n_out), dtype)
    forward(A_prev, W, b, RELU, Z, A)
    return A_prev, W, b, Z, A


class Forward:
    """Z = A_prev @ W + b; A = relu(Z) (and softmax for the output layer form)."""
    params = (list(LAYERS), DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        self.A_prev, self.W, self.b, self.Z, self.A = _layer(shape, dtype)

    def time_forward_relu(self, shape, dtype):
        forward(self.A_prev, self.W, self.b, RELU, self.Z, self.A)

    def time_forward_softmax(self, shape, dtype):
        forward(self.A_prev, self.W, self.b, SOFTMAX, self.Z, self.A)


class DeltaRecursion:
    """delta = (delta_next @ W_next.T) * relu'(Z): the hidden layer's error."""
    params = (list(LAYERS), DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        # the layer below the (n_in -> n_out) layer: delta_next (batch, n_out), Z, A (batch, n_in)
        A_prev, W, b, Z, A = _layer(shape, dtype)
        rng = np.random.default_rng(1)
        self.W = W
        self.delta_next = rng.standard_normal(Z.shape).astype(dtype)
        self.Zh = A_prev.copy()
        self.Ah = np.maximum(A_prev, 0)
        self.delta = np.empty_like(A_prev)
        hidden_delta(self.delta_next, W, self.Zh, self.Ah, RELU, self.delta)

    def time_hidden_delta(self, shape, dtype):
        hidden_delta(self.delta_next, self.W, self.Zh, self.Ah, RELU, self.delta)


class OutputDelta:
    """Softmax + cross-entropy output error on (batch, n_out)."""
    params = (list(LAYERS), DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        A_prev, W, b, Z, A = _layer(shape, dtype)
        forward(A_prev, W, b, SOFTMAX, Z, A)
        self.Z, self.A = Z, A
        rng = np.random.default_rng(2)
        self.Y = np.zeros_like(A)
        self.Y[np.arange(A.shape[0]), rng.integers(0, A.shape[1], A.shape[0])] = 1
        self.delta = np.empty_like(A)
        self.scale = 1.0 / A.shape[0]
        output_delta(Z, A, self.Y, SOFTMAX, CROSS_ENTROPY, self.scale, self.delta)

    def time_output_delta(self, shape, dtype):
        output_delta(self.Z, self.A, self.Y, SOFTMAX, CROSS_ENTROPY, self.scale, self.delta)


class WeightGradients:
    """dW = A_prev.T @ delta, db = delta.sum(0)."""
    params = (list(LAYERS), DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        self.A_prev, W, b, Z, A = _layer(shape, dtype)
        self.delta = np.random.default_rng(3).standard_normal(Z.shape).astype(dtype)
        self.dW = np.empty_like(W)
        self.db = np.empty_like(b)
        weight_gradients(self.A_prev, self.delta, self.dW, self.db)

    def time_weight_gradients(self, shape, dtype):
        weight_gradients(self.A_prev, self.delta, self.dW, self.db)


class WeightGradientStep:
    """A layer's weight gradient and SGD-with-momentum step: fused (``weight_gradient_step``:
    the gradient never stored, as checked training runs large layers) against the separate
    product and update, both on Numba's threads."""
    params = (list(LAYERS), DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        self.A_prev, self.W, _, _, _ = _layer(shape, dtype)
        batch, n_in, n_out = LAYERS[shape]
        rng = np.random.default_rng(5)
        self.delta = (rng.standard_normal((batch, n_out)) * 1e-3).astype(dtype)
        self.V = np.zeros_like(self.W)
        self.dW = np.empty_like(self.W)
        self.db = np.empty(n_out, dtype)
        self.work = np.empty(batch * n_out, dtype)
        self.time_fused(shape, dtype)
        self.time_separate(shape, dtype)

    def time_fused(self, shape, dtype):
        weight_gradient_step(self.A_prev, self.delta, self.W, self.V, self.V, MOMENTUM, 1e-6,
                             0.9, 0.0, 0.9, 0.999, 1e-8, False, 1, self.work, True)

    def time_separate(self, shape, dtype):
        weight_gradients(self.A_prev, self.delta, self.dW, self.db, True)
        sgd_update(self.W.ravel(), self.dW.ravel(), self.V.ravel(), 1e-6, 0.9, False, 0.0)


class FewRowProducts:
    """Online learning's products: 1 or 8 rows against a 1024 x 4096 float32 weight matrix
    (16 MiB; four copies in turn, 64 MiB, more than the L3, so the weights come from memory
    as in training), ``A @ W`` and ``delta @ W.T`` (``kernels/cpu/stream.py``), on the
    calling thread or over Numba's threads. The time is reading the weights: 16.8 MB at the
    machine's 40-46 GB/s is about 0.4 ms."""
    params = ([1, 8], [False, True])
    param_names = ["rows", "threaded"]
    COPIES = 4

    def setup(self, rows, threaded):
        rng = np.random.default_rng(6)
        self.Ws = [rng.standard_normal((1024, 4096)).astype(np.float32)
                   for _ in range(self.COPIES)]
        self.a = rng.standard_normal((rows, 1024)).astype(np.float32)
        self.d = rng.standard_normal((rows, 4096)).astype(np.float32)
        self.z = np.empty((rows, 4096), np.float32)
        self.e = np.empty((rows, 1024), np.float32)
        self.thr = True if threaded else None
        self.i = 0
        matmul(self.a, self.Ws[0], self.z, self.thr)
        matmul_nt(self.d, self.Ws[0], self.e, self.thr)

    def _next(self):
        self.i = (self.i + 1) % self.COPIES
        return self.Ws[self.i]

    def time_a_at_w(self, rows, threaded):
        matmul(self.a, self._next(), self.z, self.thr)

    def time_delta_at_w_t(self, rows, threaded):
        matmul_nt(self.d, self._next(), self.e, self.thr)


class Activations:
    """One activation pass over mnist's first hidden layer (128 x 256): ``bias_activation``
    (Z += b, A = f(Z)) and ``mul_activation_grad_2d`` (D *= f'(Z)), each transcendental
    activation in its vectorised form (``kernels/cpu/vecmath.py``) and ReLU for scale, on
    the calling thread."""
    params = (["relu", "tanh", "sigmoid", "elu", "softplus", "gelu"], DTYPES)
    param_names = ["activation", "dtype"]

    def setup(self, activation, dtype):
        from fastbp.kernels.activations import ACTIVATION_CODES
        from fastbp.kernels.cpu.activation import bias_activation, mul_activation_grad_2d
        rng = np.random.default_rng(9)
        self.Z = (rng.standard_normal((128, 256)) * 2).astype(dtype)
        self.b = np.zeros(256, dtype)
        self.A = np.empty_like(self.Z)
        self.D = np.ones_like(self.Z)
        self.code = ACTIVATION_CODES[activation]
        self.fwd, self.grad = bias_activation, mul_activation_grad_2d
        self.fwd(self.Z, self.b, self.code, self.A)
        self.grad(self.Z, self.A, self.code, self.D)

    def time_forward(self, activation, dtype):
        self.fwd(self.Z, self.b, self.code, self.A)

    def time_derivative(self, activation, dtype):
        self.grad(self.Z, self.A, self.code, self.D)


class Updates:
    """Optimizer updates over a whole workload's parameter vector: the standalone parallel
    kernels (sgd_update, adam_update) and the serial ranges the training driver calls."""
    params = (list(WORKLOADS), DTYPES)
    param_names = ["workload", "dtype"]

    def setup(self, workload, dtype):
        sizes = WORKLOADS[workload][0]
        n = n_weights(sizes) + sum(sizes[1:])
        rng = np.random.default_rng(4)
        self.p = rng.standard_normal(n).astype(dtype)
        self.g = rng.standard_normal(n).astype(dtype)
        self.v = np.zeros(n, dtype)
        self.m2 = np.zeros(n, dtype)
        self.n = n
        sgd_update(self.p, self.g, self.v, 1e-3, 0.9, False, 0.0)
        sgd_range(self.p, self.g, self.v, 1e-3, 0.9, False, 0.0, 0, n)
        adam_update(self.p, self.g, self.v, self.m2, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False)
        adam_range(self.p, self.g, self.v, self.m2, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 0, n)

    def time_sgd_momentum(self, workload, dtype):
        sgd_update(self.p, self.g, self.v, 1e-3, 0.9, False, 0.0)

    def time_sgd_momentum_serial(self, workload, dtype):
        sgd_range(self.p, self.g, self.v, 1e-3, 0.9, False, 0.0, 0, self.n)

    def time_adam(self, workload, dtype):
        adam_update(self.p, self.g, self.v, self.m2, 2, 1e-3, 0.9, 0.999, 1e-8, 0.0, False)

    def time_adam_serial(self, workload, dtype):
        adam_range(self.p, self.g, self.v, self.m2, 2, 1e-3, 0.9, 0.999, 1e-8, 0.0, False,
                   0, self.n)

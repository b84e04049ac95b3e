"""In-place optimizer updates on device arrays, PyTorch's formulas (as kernels.cpu.updates).

The kernels take two weight decays: entries ``k < nw`` (the weights of the flat layout) use
``wd``, the rest (the biases) ``wd_b``. They do nothing when ``info[1] != 0``: the training
driver sets that flag on device when a batch loss is not finite, so the batch makes no update
without the host having to look at the loss between launches.
"""
import math

import numpy as np
from numba import cuda

from . import config
from ._checks import check_same, require

_dev = cuda.jit(device=True)


@_dev
def sgd_one(param, grad, velocity, k, lr, momentum, nesterov, wd):
    g = grad[k] + wd * param[k]
    if momentum == 0.0:
        param[k] -= lr * g
    else:
        v = momentum * velocity[k] + g
        velocity[k] = v
        if nesterov:
            param[k] -= lr * (g + momentum * v)
        else:
            param[k] -= lr * v


@_dev
def adam_one(param, grad, m, v, k, lr, beta1, beta2, eps, wd, decoupled, step):
    bc1 = 1.0 - beta1 ** step
    bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
    shrink = 1.0 - lr * wd if decoupled else 1.0
    l2 = 0.0 if decoupled else wd
    p = param[k] * shrink
    g = grad[k] + l2 * param[k]
    mk = beta1 * m[k] + (1.0 - beta1) * g
    vk = beta2 * v[k] + (1.0 - beta2) * g * g
    m[k] = mk
    v[k] = vk
    param[k] = p - (lr / bc1) * mk / (math.sqrt(vk) / bc2_sqrt + eps)


@_dev
def sgd_range_dev(param, grad, velocity, lr, momentum, nesterov, wd, wd_b, nw, start, stride):
    for k in range(start, param.shape[0], stride):
        sgd_one(param, grad, velocity, k, lr, momentum, nesterov, wd if k < nw else wd_b)


@_dev
def adam_range_dev(param, grad, m, v, step, lr, beta1, beta2, eps, wd, wd_b, decoupled, nw,
                   start, stride):
    for k in range(start, param.shape[0], stride):
        adam_one(param, grad, m, v, k, lr, beta1, beta2, eps, wd if k < nw else wd_b,
                 decoupled, step)


@cuda.jit
def sgd_kernel(param, grad, velocity, lr, momentum, nesterov, wd, wd_b, nw, info):
    if info[1] != 0:
        return
    sgd_range_dev(param, grad, velocity, lr, momentum, nesterov, wd, wd_b, nw, cuda.grid(1),
                  cuda.gridsize(1))


@cuda.jit
def adam_kernel(param, grad, m, v, step, lr, beta1, beta2, eps, wd, wd_b, decoupled, nw, info):
    if info[1] != 0:
        return
    adam_range_dev(param, grad, m, v, step, lr, beta1, beta2, eps, wd, wd_b, decoupled, nw,
                   cuda.grid(1), cuda.gridsize(1))


def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    """In-place torch.optim.SGD step (dampening 0) on 1-D device arrays; see kernels.cpu.

    ``velocity`` is ignored when momentum is 0 (pass any array, e.g. ``grad``).
    """
    param, grad, velocity = check_same("sgd_update", param=param, grad=grad, velocity=velocity)
    _check_1d("sgd_update", param, grad, velocity if momentum != 0 else grad)
    blocks, tpb = config.grid_1d(param.shape[0])
    info = cuda.to_device(np.zeros(3, np.float64))
    sgd_kernel[blocks, tpb](param, grad, velocity, float(lr), float(momentum), bool(nesterov),
                            float(weight_decay), float(weight_decay), param.shape[0], info)


def adam_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """In-place Adam (``decoupled=False``) / AdamW step on 1-D device arrays; ``step`` is this
    update's 1-based count."""
    param, grad, m, v = check_same("adam_update", param=param, grad=grad, m=m, v=v)
    _check_1d("adam_update", param, grad, m, v)
    require(int(step) >= 1, "adam_update: step is 1-based")
    blocks, tpb = config.grid_1d(param.shape[0])
    info = cuda.to_device(np.zeros(3, np.float64))
    adam_kernel[blocks, tpb](param, grad, m, v, int(step), float(lr), float(beta1), float(beta2),
                             float(eps), float(weight_decay), float(weight_decay),
                             bool(decoupled), param.shape[0], info)


def _check_1d(fn, *arrays):
    n = arrays[0].shape[0]
    require(all(a.ndim == 1 and a.shape[0] == n for a in arrays),
            f"{fn}: arrays must be 1-D of one length (pass W.reshape(-1) for a matrix)")

"""Slow, obviously correct float64 NumPy references, independent of the code under test."""
import numpy as np
from scipy.special import erf

LEAKY = 0.01

ACT = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),  # the same function, never overflows
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, LEAKY * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "softplus": lambda z: np.logaddexp(0.0, z),
    "gelu": lambda z: 0.5 * z * (1.0 + erf(z / np.sqrt(2.0))),
    "softmax": lambda z: np.exp(z - z.max(1, keepdims=True))
    / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True),
}


def act_grad(name, z):
    """f'(z) by central differences in float64 (independent of any closed form)."""
    h = 1e-6
    return (ACT[name](z + h) - ACT[name](z - h)) / (2 * h)


def loss(name, A, Y):
    n = A.shape[0]
    if name == "mse":
        return ((A - Y) ** 2).mean() / 2
    if name == "binary_cross_entropy":
        return -(Y * np.log(A) + (1 - Y) * np.log(1 - A)).sum() / n
    if name == "cross_entropy":
        return -(Y * np.log(A)).sum() / n
    raise ValueError(name)


def forward(Ws, bs, acts, X):
    """All Z and A of a network (acts: one name per layer, output last)."""
    A = [X]
    Z = []
    for W, b, f in zip(Ws, bs, acts):
        Z.append(A[-1] @ W + b)
        A.append(ACT[f](Z[-1]))
    return Z, A


def sgd(p, g, v, lr, momentum=0.0, nesterov=False, wd=0.0):
    """torch.optim.SGD, dampening 0 (buffer starts at g, same as zeros + g)."""
    g = g + wd * p
    if momentum:
        v = momentum * v + g
        g = g + momentum * v if nesterov else v
    return p - lr * g, v


def adam(p, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
    """torch.optim.Adam / AdamW, step t (1-based)."""
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mhat = m / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    return p - lr * mhat / (np.sqrt(vhat) + eps), m, v


def onehot(y, k):
    Y = np.zeros((len(y), k))
    Y[np.arange(len(y)), y] = 1
    return Y


# Closed-form derivatives (textbook calculus), for exact reference training loops.
ACT_GRAD = {
    "identity": lambda z: np.ones_like(z),
    "sigmoid": lambda z: ACT["sigmoid"](z) * (1 - ACT["sigmoid"](z)),
    "tanh": lambda z: 1 - np.tanh(z) ** 2,
    "relu": lambda z: (z > 0).astype(float),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, LEAKY),
    "elu": lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))),
    "softplus": lambda z: ACT["sigmoid"](z),
    "gelu": lambda z: 0.5 * (1 + erf(z / np.sqrt(2))) + z * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
}

"""Independent float64 NumPy references for the CUDA kernel tests (no fastbp code inside)."""
import numpy as np
from scipy.special import erf

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU, SOFTMAX = range(9)
ELEMENTWISE = (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU)
MSE, BCE, CE = range(3)


def act(z, code):
    z = np.asarray(z, np.float64)
    if code == IDENTITY:
        return z.copy()
    if code == SIGMOID:
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    if code == TANH:
        return np.tanh(z)
    if code == RELU:
        return np.where(z > 0, z, 0.0)
    if code == LEAKY_RELU:
        return np.where(z > 0, z, 0.01 * z)
    if code == ELU:
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))
    if code == SOFTPLUS:
        return np.logaddexp(0.0, z)
    if code == GELU:
        return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))
    if code == SOFTMAX:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(code)


def act_grad(z, code):
    """f'(z), elementwise codes only."""
    z = np.asarray(z, np.float64)
    if code == IDENTITY:
        return np.ones_like(z)
    if code == SIGMOID:
        s = act(z, SIGMOID)
        return s * (1 - s)
    if code == TANH:
        return 1 - np.tanh(z) ** 2
    if code == RELU:
        return (z > 0).astype(np.float64)
    if code == LEAKY_RELU:
        return np.where(z > 0, 1.0, 0.01)
    if code == ELU:
        return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))
    if code == SOFTPLUS:
        return act(z, SIGMOID)
    if code == GELU:
        return 0.5 * (1 + erf(z / np.sqrt(2))) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    raise ValueError(code)


def row_losses(Z, Y, out_code, loss_code):
    Z, Y = np.asarray(Z, np.float64), np.asarray(Y, np.float64)
    if loss_code == MSE:
        return ((act(Z, out_code) - Y) ** 2).sum(1) / (2 * Z.shape[1])
    if loss_code == BCE:
        return (np.logaddexp(0, Z) - Z * Y).sum(1)
    lse = np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1)) + Z.max(1)
    return (Y * (lse[:, None] - Z)).sum(1)


def output_delta(Z, Y, out_code, loss_code, scale):
    A = act(Z, out_code)
    D = (A - Y) * scale
    if loss_code != MSE:
        return D
    if out_code == SOFTMAX:
        return A * (D - (D * A).sum(1, keepdims=True))
    return D * act_grad(Z, out_code)


def network_grads(Ws, bs, codes, loss_code, X, Y):
    """Mean loss and its gradients (dWs, dbs) by plain backprop in float64."""
    As, Zs = [np.asarray(X, np.float64)], []
    for W, b, c in zip(Ws, bs, codes):
        Zs.append(As[-1] @ W + b)
        As.append(act(Zs[-1], c))
    n, K = Zs[-1].shape
    loss = row_losses(Zs[-1], Y, codes[-1], loss_code).mean()
    D = output_delta(Zs[-1], Y, codes[-1], loss_code, 1 / (n * K) if loss_code == MSE else 1 / n)
    dWs, dbs = [None] * len(Ws), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        dWs[l] = As[l].T @ D
        dbs[l] = D.sum(0)
        if l:
            D = (D @ Ws[l].T) * act_grad(Zs[l - 1], codes[l - 1])
    return loss, dWs, dbs


def sgd(p, g, v, lr, mom, nesterov, wd):
    p, g, v = (np.asarray(a, np.float64).copy() for a in (p, g, v))
    g = g + wd * p
    if mom:
        v = mom * v + g
        g = g + mom * v if nesterov else v
    return p - lr * g, v


def adam(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    p, g, m, v = (np.asarray(a, np.float64).copy() for a in (p, g, m, v))
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - lr * mhat / (np.sqrt(vhat) + eps), m, v


def tol(dtype):
    """(rtol, atol) for comparing against float64 references."""
    return (1e-4, 1e-5) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)

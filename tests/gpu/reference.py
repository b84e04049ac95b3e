"""Independent float64 NumPy references for the CUDA kernel tests (no fastbp code inside)."""
import numpy as np

import reference as R  # tests/reference.py: the shared float64 references

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU, SOFTMAX = range(9)
ELEMENTWISE = (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU)
MSE, BCE, CE = range(3)


NAMES = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
         "softmax")  # indexed by code, as in kernels/activations.py


def act(z, code):
    """f(z) by activation code, from the shared float64 reference table."""
    return R.ACT[NAMES[code]](np.asarray(z, np.float64))


def act_grad(z, code):
    """f'(z), elementwise codes only (closed forms of the shared reference)."""
    return R.ACT_GRAD[NAMES[code]](np.asarray(z, np.float64))


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
    return R.sgd(*(np.asarray(a, np.float64) for a in (p, g, v)), lr, mom, nesterov, wd)


def adam(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    return R.adam(*(np.asarray(a, np.float64) for a in (p, g, m, v)), t, lr, b1, b2, eps, wd,
                  decoupled)


def tol(dtype):
    """(rtol, atol) for comparing against float64 references."""
    return (1e-4, 1e-5) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)

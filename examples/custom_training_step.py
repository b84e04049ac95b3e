"""Build your own training step from fastbp's kernels, inside your own @njit function.

    python examples/custom_training_step.py [--epochs 15]

The kernels in ``fastbp.kernels`` are plain numba functions, callable from any ``@njit`` code.
Here a 64-64-10 network is trained with SGD + momentum and one thing fastbp.Network does not
do: the gradients are clipped to a maximum global norm before each update. The whole epoch is
one compiled call: no Python between minibatches.

About ``cache=True``: numba's on-disk cache of *your* function embeds the fastbp kernels it
calls but is keyed on your file alone, so after upgrading fastbp a stale cache could load old
kernel code. Either leave caching off (as here: a few seconds of compilation per run) or
delete your ``__pycache__`` folder after upgrading fastbp.
"""
import argparse
import math

import numpy as np
from numba import njit

from fastbp.kernels import forward, hidden_delta, output_delta, sgd_update, weight_gradients
from fastbp.kernels.activations import CROSS_ENTROPY, RELU, SOFTMAX


@njit
def sum_squares(a):
    total = 0.0
    for v in a.ravel():
        total += float(v) * float(v)
    return total


@njit
def clip_by_global_norm(dW1, db1, dW2, db2, max_norm):
    """Scale the gradients by min(1, max_norm / ||all gradients||); returns the norm."""
    norm = math.sqrt(sum_squares(dW1) + sum_squares(db1) + sum_squares(dW2) + sum_squares(db2))
    if norm > max_norm:
        scale = max_norm / norm
        dW1 *= scale
        db1 *= scale
        dW2 *= scale
        db2 *= scale
    return norm


@njit
def flat(a):
    """A 1-D view of a C-contiguous array (the update kernels take 1-D arrays)."""
    return a.reshape(a.size)


@njit
def train_epoch(X, Y, order, batch, params, vels, grads, bufs, lr, momentum, max_norm):
    """One epoch of minibatch SGD; returns (mean loss, largest gradient norm seen)."""
    W1, b1, W2, b2 = params
    dW1, db1, dW2, db2 = grads
    vW1, vb1, vW2, vb2 = vels
    Xb_buf, Yb_buf, Z1_buf, A1_buf, Z2_buf, A2_buf, D1_buf, D2_buf = bufs
    n = order.shape[0]
    total_loss, max_seen = 0.0, 0.0
    for start in range(0, n, batch):
        m = min(n, start + batch) - start
        Xb, Yb = Xb_buf[:m], Yb_buf[:m]              # views for the (smaller) last batch
        Z1, A1, Z2, A2 = Z1_buf[:m], A1_buf[:m], Z2_buf[:m], A2_buf[:m]
        D1, D2 = D1_buf[:m], D2_buf[:m]
        for r in range(m):
            Xb[r] = X[order[start + r]]
            Yb[r] = Y[order[start + r]]
        # forward: Z = A_prev @ W + b, A = f(Z)
        forward(Xb, W1, b1, RELU, Z1, A1)
        forward(A1, W2, b2, SOFTMAX, Z2, A2)
        for r in range(m):                           # cross-entropy of the batch
            for j in range(Yb.shape[1]):
                if Yb[r, j] > 0:
                    total_loss -= math.log(max(A2[r, j], 1e-12))
        # backward: output error, then the delta recursion, then the gradients
        output_delta(Z2, A2, Yb, SOFTMAX, CROSS_ENTROPY, 1.0 / m, D2)
        weight_gradients(A1, D2, dW2, db2)
        hidden_delta(D2, W2, Z1, A1, RELU, D1)
        weight_gradients(Xb, D1, dW1, db1)
        # the custom part: global-norm gradient clipping
        max_seen = max(max_seen, clip_by_global_norm(dW1, db1, dW2, db2, max_norm))
        # SGD with momentum, in place, through the kernel (1-D views of each array)
        sgd_update(flat(W1), flat(dW1), flat(vW1), lr, momentum, False, 0.0)
        sgd_update(b1, db1, vb1, lr, momentum, False, 0.0)
        sgd_update(flat(W2), flat(dW2), flat(vW2), lr, momentum, False, 0.0)
        sgd_update(b2, db2, vb2, lr, momentum, False, 0.0)
    return total_loss / n, max_seen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    from fastbp.data import load_digits
    X, y = load_digits()
    X = (X / 16.0).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[y]
    rng = np.random.default_rng(0)
    n_in, n_hidden, n_out, batch = 64, 64, 10, 32
    params = (rng.normal(0, math.sqrt(2 / n_in), (n_in, n_hidden)).astype(np.float32),
              np.zeros(n_hidden, np.float32),
              rng.normal(0, math.sqrt(2 / n_hidden), (n_hidden, n_out)).astype(np.float32),
              np.zeros(n_out, np.float32))
    grads = tuple(np.zeros_like(p) for p in params)
    vels = tuple(np.zeros_like(p) for p in params)
    bufs = tuple(np.empty((batch, k), np.float32)
                 for k in (n_in, n_out, n_hidden, n_hidden, n_out, n_out, n_hidden, n_out))
    for epoch in range(args.epochs):
        order = rng.permutation(len(X))
        loss, norm = train_epoch(X, Y, order, batch, params, vels, grads, bufs, 0.1, 0.9, 1.0)
        if epoch % 5 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d}  loss {loss:.4f}  largest gradient norm {norm:.3f}")
    hidden = np.maximum(X @ params[0] + params[1], 0)
    accuracy = float(((hidden @ params[2] + params[3]).argmax(1) == y).mean())
    print(f"training accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()

"""Fused whole-network training for narrow nets: a chunk of minibatches in ONE launch.

numba.cuda launches cost ~10 us, as much as a PyTorch op, so a kernel-per-layer driver cannot
beat PyTorch on small nets. Following tiny-cuda-nn's fully fused MLP, one block runs every
phase of every minibatch of the chunk (gather, forward, loss, backward, update), separated by
``syncthreads``; activations and deltas of a <=128-wide, <=256-row batch stay in the on-chip
caches (L1/L2), the host does one launch and one 3-number copy per chunk. Semantics are those
of ``kernels.cpu.network.train_batches``; the arithmetic is the same per element (each output
a dot product in the working dtype, bias sums in float64), only the order of the GEMM sums
differs from BLAS.

Every phase is a block-stride loop: thread t takes items t, t + blockDim, ...
"""
import math

from numba import cuda, int32

from ..activations import ADAM, MSE, SOFTMAX
from . import config
from .scalar import activate as _activate
from .scalar import activate_grad as _activate_grad
from .rows import delta_elems_dev, delta_softmax_mse_dev, row_loss_dev, softmax_rows_dev
from .updates import adam_range_dev, sgd_range_dev

_dev = cuda.jit(device=True)


def fits(sizes, rows):
    """Whether the fused path is used for these layer sizes and batch rows."""
    return (config.FUSED and int(max(sizes)) <= config.FUSED_MAX_WIDTH
            and rows <= config.FUSED_MAX_ROWS)


@_dev
def dense_fwd_dev(Ain, W, b, code, m, Z, Aout, start, stride):
    """Z = Ain @ W + b, Aout = f(Z) (softmax: Z only) on the first m rows."""
    n_in, n_out = W.shape
    for e in range(start, m * n_out, stride):
        i = e // n_out
        j = e - i * n_out
        acc = Ain[i, 0] * W[0, j]
        for k in range(1, n_in):
            acc += Ain[i, k] * W[k, j]
        z = acc + b[j]
        Z[i, j] = z
        if code != SOFTMAX:
            Aout[i, j] = _activate(z, code)


@_dev
def dgrad_dev(Dn, W, Z, A, code, m, D, start, stride):
    """D = (Dn @ W.T) * f'(Z, A) on the first m rows."""
    n_h, n_next = W.shape
    for e in range(start, m * n_h, stride):
        i = e // n_h
        j = e - i * n_h
        acc = Dn[i, 0] * W[j, 0]
        for k in range(1, n_next):
            acc += Dn[i, k] * W[j, k]
        D[i, j] = acc * _activate_grad(Z[i, j], A[i, j], code)


@_dev
def wgrad_dev(Ain, Dn, m, dW, db, start, stride):
    """dW = Ain[:m].T @ Dn[:m]; db = column sums of Dn[:m] (float64, rows in order)."""
    n_in, n_out = dW.shape
    for e in range(start, n_in * n_out, stride):
        k = e // n_out
        j = e - k * n_out
        acc = Ain[0, k] * Dn[0, j]
        for i in range(1, m):
            acc += Ain[i, k] * Dn[i, j]
        dW[k, j] = acc
    for j in range(start, n_out, stride):
        s = 0.0
        for i in range(m):
            s += Dn[i, j]
        db[j] = s


@cuda.jit
def fused_train_kernel(X, Y, order, batch_size, first, last, sizes, codes, loss_code, params,
                       grads, s0, s1, opt, lr, mom, nesterov, wd, wd_b, beta1, beta2, eps,
                       decoupled, step0, nw, Abuf, Zbuf, D0, D1, Yb, rowloss, info):
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    flag = cuda.shared.array(1, int32)
    n = order.shape[0]
    L = sizes.shape[0] - 1
    rows = Yb.shape[0]
    d = X.shape[1]
    K = Y.shape[1]
    for b in range(first, last):
        r0 = b * batch_size
        m = min(n, r0 + batch_size) - r0
        # gather
        A0 = Abuf[:rows * d].reshape((rows, d))
        for e in range(t, m * (d + K), nt):
            r = e // (d + K)
            c = e - r * (d + K)
            src = order[r0 + r]
            if c < d:
                A0[r, c] = X[src, c]
            else:
                Yb[r, c - d] = Y[src, c - d]
        cuda.syncthreads()
        # forward
        aoff = 0
        zoff = 0
        woff = 0
        boff = nw
        for l in range(L):
            n_in = sizes[l]
            n_out = sizes[l + 1]
            Ain = Abuf[aoff:aoff + rows * n_in].reshape((rows, n_in))
            a1 = aoff + rows * n_in
            Aout = Abuf[a1:a1 + rows * n_out].reshape((rows, n_out))
            Z = Zbuf[zoff:zoff + rows * n_out].reshape((rows, n_out))
            W = params[woff:woff + n_in * n_out].reshape((n_in, n_out))
            dense_fwd_dev(Ain, W, params[boff:boff + n_out], codes[l], m, Z, Aout, t, nt)
            cuda.syncthreads()
            if codes[l] == SOFTMAX:
                softmax_rows_dev(Z, Aout, m, t, nt)
                cuda.syncthreads()
            aoff += rows * n_in
            zoff += rows * n_out
            woff += n_in * n_out
            boff += n_out
        # loss: per-row in parallel, summed in row order by thread 0
        ZL = Zbuf[zoff - rows * K:zoff].reshape((rows, K))
        AL = Abuf[aoff:aoff + rows * K].reshape((rows, K))
        row_loss_dev(ZL, AL, Yb, m, loss_code, rowloss, t, nt)
        cuda.syncthreads()
        if t == 0:
            s = 0.0
            for i in range(m):
                s += rowloss[i]
            if math.isfinite(s):
                info[0] += s
                info[2] = b - first + 1
                flag[0] = 0
            else:
                info[1] = 1
                info[2] = b - first
                flag[0] = 1
        cuda.syncthreads()
        if flag[0] != 0:
            return
        # backward: output error into the delta buffer of layer L
        scale = 1.0 / (m * K) if loss_code == MSE else 1.0 / m
        DL = D0[:rows * K].reshape((rows, K))
        delta_elems_dev(ZL, AL, Yb, m, codes[L - 1], loss_code, scale, DL, t, nt)
        if loss_code == MSE and codes[L - 1] == SOFTMAX:
            cuda.syncthreads()
            delta_softmax_mse_dev(AL, m, DL, t, nt)
        cuda.syncthreads()
        for l in range(L - 1, -1, -1):
            n_in = sizes[l]
            n_out = sizes[l + 1]
            aoff -= rows * n_in
            zoff -= rows * n_out
            woff -= n_in * n_out
            boff -= n_out
            even = (L - 1 - l) % 2 == 0  # deltas alternate: layer L's in D0
            Dn = (D0 if even else D1)[:rows * n_out].reshape((rows, n_out))
            Ain = Abuf[aoff:aoff + rows * n_in].reshape((rows, n_in))
            wgrad_dev(Ain, Dn, m, grads[woff:woff + n_in * n_out].reshape((n_in, n_out)),
                      grads[boff:boff + n_out], t, nt)
            if l > 0:
                D = (D1 if even else D0)[:rows * n_in].reshape((rows, n_in))
                Zin = Zbuf[zoff - rows * n_in:zoff].reshape((rows, n_in))
                W = params[woff:woff + n_in * n_out].reshape((n_in, n_out))
                dgrad_dev(Dn, W, Zin, Ain, codes[l - 1], m, D, t, nt)
            cuda.syncthreads()
        # update
        if opt == ADAM:
            adam_range_dev(params, grads, s0, s1, step0 + b - first + 1, lr, beta1, beta2, eps,
                           wd, wd_b, decoupled, nw, t, nt)
        else:
            sgd_range_dev(params, grads, s0, lr, mom, nesterov, wd, wd_b, nw, t, nt)
        cuda.syncthreads()


def train_batches(X, Y, order, batch_size, first, last, sizes_d, codes_d, sizes, loss_code,
                  params, grads, state, opt, hyper, step0, ws, info):
    """One launch for minibatches first..last-1 (same contract as network.train_batches).
    ``ws`` is a network.Workspace; its per-layer buffers are re-read as flat ones here."""
    from .network import (BETA1, BETA2, BIAS_DECAY, DECOUPLED, EPS, LR, MOMENTUM, NESTEROV,
                          WEIGHT_DECAY, n_weights)
    if last <= first:
        return
    wd = float(hyper[WEIGHT_DECAY])
    s0 = state[0] if state.shape[0] > 0 else grads
    s1 = state[1] if state.shape[0] > 1 else grads
    fws = _flat(ws, sizes)
    fused_train_kernel[1, config.FUSED_THREADS](
        X, Y, order, batch_size, first, last, sizes_d, codes_d, loss_code, params, grads, s0,
        s1, opt, float(hyper[LR]), float(hyper[MOMENTUM]), bool(hyper[NESTEROV] != 0.0), wd,
        wd * float(hyper[BIAS_DECAY]), float(hyper[BETA1]), float(hyper[BETA2]),
        float(hyper[EPS]), bool(hyper[DECOUPLED] != 0.0), step0, n_weights(sizes), *fws,
        ws.Y, ws.rowloss, info)


def _flat(ws, sizes):
    """Flat (Abuf, Zbuf, D0, D1) device buffers for the fused kernel, cached on ws."""
    fl = getattr(ws, "_fused_flat", None)
    if fl is None:
        from numba.cuda import device_array
        dtype = ws.Y.dtype
        rows = ws.rows
        total = rows * int(sum(int(s) for s in sizes))
        wide = rows * int(max(int(s) for s in sizes[1:]))
        fl = ws._fused_flat = (device_array(total, dtype),
                               device_array(rows * int(sum(int(s) for s in sizes[1:])), dtype),
                               device_array(wide, dtype), device_array(wide, dtype))
    return fl

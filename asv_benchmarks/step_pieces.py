"""Where one training step of a small net goes, on one thread: each kernel the training driver
calls, timed in a compiled loop (no Python call per step), against the register tile's rate
on data in L1 (docs/performance.md, "On an AMD EPYC (Zen 4)": the count behind the digits
targets).

A small net's step runs on the calling thread, so its products can run no faster than one
core's register tile. This script prints, for a net with ReLU hidden layers, a softmax
output, cross-entropy and SGD with momentum (``compare.py``'s), float32 by default:

- each matrix product of the step alone (``gemm.matmul``, ``matmul_tn``, ``matmul_nt``), its
  time and FLOP rate, checked once against a float64 product;
- each kernel of the step with what it fuses (``forward``: product, bias and activation;
  ``weight_gradients``: product and bias sum; ``hidden_delta``: product and the activation's
  derivative; ``batch_loss_sum``, ``output_delta``, ``sgd_range`` over every parameter);
- the same kernels in one loop, a whole step but the gather of the batch's rows;
- the tile's rate, ``gemm.matmul`` on 32x128x64 (every operand in L1), and how long the
  step's products would take at it.

Usage (from the repository root)::

    python asv_benchmarks/step_pieces.py                     # digits: 64-128-10, batch 32
    python asv_benchmarks/step_pieces.py --sizes 784,256,128,10 --batch 128 --calls 2000
"""
import argparse
import time

import numpy as np
from numba import njit

from fastbp.kernels.activations import CROSS_ENTROPY, RELU, SOFTMAX
from fastbp.kernels.cpu.backward import hidden_delta, output_delta
from fastbp.kernels.cpu.forward import forward
from fastbp.kernels.cpu.gemm import matmul, matmul_nt, matmul_tn
from fastbp.kernels.cpu.gradients import weight_gradients
from fastbp.kernels.cpu.network import batch_loss_sum
from fastbp.kernels.cpu.updates import sgd_range

if __package__ in (None, ""):  # run as a script: make ``product_peers`` importable
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from product_peers import flops, reference
else:
    from .product_peers import flops, reference

LR, MOMENTUM = 1e-6, 0.9  # tiny: the loops update the same parameters many times
#: ``product_peers``' product kinds, as the compiled loop's integer argument.
KINDS = {"nn": 0, "tn": 1, "nt": 2}
#: The register tile's reference product: every operand in L1 on any x86 core.
TILE_SHAPE = (32, 128, 64)


# The loops are not cached: loaded under two names (``python asv_benchmarks/step_pieces.py``,
# and ``asv_benchmarks.step_pieces`` from the tests) one cache entry would break the other
# (Numba records the module's name), and with the kernels cached they compile in seconds.
@njit
def _products(kind, A, B, C, n):
    for _ in range(n):
        if kind == 0:
            matmul(A, B, C)
        elif kind == 1:
            matmul_tn(A, B, C)
        else:
            matmul_nt(A, B, C)


@njit
def _forward(A_prev, W, b, code, Z, A, n):
    for _ in range(n):
        forward(A_prev, W, b, code, Z, A)


@njit
def _loss(Z, A, Y, n):
    s = 0.0
    for _ in range(n):
        s += batch_loss_sum(Z, A, Y, SOFTMAX, CROSS_ENTROPY)
    return s


@njit
def _output_delta(Z, A, Y, scale, D, n):
    for _ in range(n):
        output_delta(Z, A, Y, SOFTMAX, CROSS_ENTROPY, scale, D)


@njit
def _weight_gradients(A, D, gW, gb, n):
    for _ in range(n):
        weight_gradients(A, D, gW, gb)


@njit
def _hidden_delta(D_next, W_next, Z, A, D, n):
    for _ in range(n):
        hidden_delta(D_next, W_next, Z, A, RELU, D)


@njit
def _update(P, G, V, n):
    for _ in range(n):
        sgd_range(P, G, V, LR, MOMENTUM, False, 0.0, 0, P.shape[0])


@njit
def _step(As, Zs, Ws, bs, Ds, gWs, gbs, Y, P, G, V, n):
    """Every kernel of a step in the driver's order (the gather left out); tuples of arrays,
    ``As[0]`` the inputs, ``Ds[l]`` the delta of layer l + 1."""
    L = len(Ws)
    s = 0.0
    m = Y.shape[0]
    for _ in range(n):
        for l in range(L):
            forward(As[l], Ws[l], bs[l], SOFTMAX if l == L - 1 else RELU, Zs[l], As[l + 1])
        s += batch_loss_sum(Zs[L - 1], As[L], Y, SOFTMAX, CROSS_ENTROPY)
        output_delta(Zs[L - 1], As[L], Y, SOFTMAX, CROSS_ENTROPY, 1.0 / m, Ds[L - 1])
        for l in range(L - 1, -1, -1):
            weight_gradients(As[l], Ds[l], gWs[l], gbs[l])
            if l > 0:
                hidden_delta(Ds[l], Ws[l], Zs[l - 1], As[l], RELU, Ds[l - 1])
        sgd_range(P, G, V, LR, MOMENTUM, False, 0.0, 0, P.shape[0])
    return s


def _time(run, calls, rounds):
    """Median seconds per call over ``rounds`` timings of ``calls`` calls (one untimed first)."""
    run(1)
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        run(calls)
        ts.append((time.perf_counter() - t) / calls)
    return float(np.median(ts))


def measure(sizes, batch, dtype="float32", calls=20000, rounds=5, out=print):
    """Time the pieces of a step of the net ``sizes`` at ``batch`` rows; print a table via
    ``out`` and return {label: seconds per call}, with "products", "kernels", "step" and
    "tile GFLOP/s" among the keys."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    L = len(sizes) - 1

    def r(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dt)

    Ws = [r(a, b, scale=1.0 / np.sqrt(a)) for a, b in zip(sizes, sizes[1:])]
    bs = [np.zeros(b, dt) for b in sizes[1:]]
    As = [r(batch, sizes[0])] + [np.empty((batch, s), dt) for s in sizes[1:]]
    Zs = [np.empty((batch, s), dt) for s in sizes[1:]]
    Ds = [r(batch, s, scale=1e-3) for s in sizes[1:]]
    gWs = [np.empty_like(W) for W in Ws]
    gbs = [np.empty_like(b) for b in bs]
    Y = np.zeros((batch, sizes[-1]), dt)
    Y[np.arange(batch), rng.integers(0, sizes[-1], batch)] = 1
    n_params = sum(W.size + b.size for W, b in zip(Ws, bs))
    P, G, V = r(n_params, scale=0.01), r(n_params, scale=1e-3), np.zeros(n_params, dt)
    for l in range(L):  # real activations for the backward kernels' inputs
        forward(As[l], Ws[l], bs[l], SOFTMAX if l == L - 1 else RELU, Zs[l], As[l + 1])

    res = {}
    rows = []
    flops_total = 0

    def product(label, kind, A, B):
        nonlocal flops_total
        ref = reference(kind, A, B)
        C = np.empty(ref.shape, dt)
        code = KINDS[kind]
        _products(code, A, B, C, 1)
        tol = 1e-4 if dt == np.float32 else 1e-10
        if not np.allclose(C, ref, rtol=tol, atol=tol * max(1.0, float(np.abs(ref).max()))):
            raise AssertionError(f"{label}: the product differs from float64's")
        t = _time(lambda n: _products(code, A, B, C, n), calls, rounds)
        fl = flops(kind, A, B)
        res[label] = t
        rows.append((label, t, fl / t))
        flops_total += fl

    for l in range(L):
        m, k, n = batch, sizes[l], sizes[l + 1]
        product(f"A{l} @ W{l + 1}        {m}x{k}x{n}", "nn", As[l], Ws[l])
    for l in range(L - 1, -1, -1):
        m, k, n = batch, sizes[l], sizes[l + 1]
        product(f"A{l}.T @ D{l + 1}      {k}x{m}x{n}", "tn", As[l], Ds[l])
        if l > 0:
            product(f"D{l + 1} @ W{l + 1}.T      {m}x{n}x{k}", "nt", Ds[l], Ws[l])
    products = sum(t for _, t, _ in rows)
    res["products"] = products

    kernels = []

    def kernel(label, run):
        t = _time(run, calls, rounds)
        res[label] = t
        kernels.append((label, t))

    for l in range(L):
        code = SOFTMAX if l == L - 1 else RELU
        kernel(f"forward {l + 1} (product, bias, {'softmax' if l == L - 1 else 'ReLU'})",
               lambda n, l=l, code=code: _forward(As[l], Ws[l], bs[l], code, Zs[l], As[l + 1], n))
    kernel("loss (batch_loss_sum)", lambda n: _loss(Zs[-1], As[-1], Y, n))
    kernel("output delta", lambda n: _output_delta(Zs[-1], As[-1], Y, 1.0 / batch, Ds[-1], n))
    for l in range(L - 1, -1, -1):
        kernel(f"weight gradients {l + 1} (product, bias sum)",
               lambda n, l=l: _weight_gradients(As[l], Ds[l], gWs[l], gbs[l], n))
        if l > 0:
            kernel(f"hidden delta {l} (product, ReLU')",
                   lambda n, l=l: _hidden_delta(Ds[l], Ws[l], Zs[l - 1], As[l], Ds[l - 1], n))
    kernel(f"update, SGD momentum, {n_params} parameters", lambda n: _update(P, G, V, n))
    res["kernels"] = sum(t for _, t in kernels)
    tl = [tuple(x) for x in (As, Zs, Ws, bs, Ds, gWs, gbs)]  # homogeneous: indexable
    res["step"] = _time(lambda n: _step(*tl, Y, P, G, V, n), calls, rounds)

    tm, tk, tn = TILE_SHAPE
    At, Bt, Ct = r(tm, tk), r(tk, tn), np.empty((tm, tn), dt)
    t_tile = _time(lambda n: _products(0, At, Bt, Ct, n), max(calls, 20000), rounds)
    tile_rate = 2 * tm * tk * tn / t_tile
    res["tile GFLOP/s"] = tile_rate / 1e9

    us = 1e6
    out(f"{'-'.join(map(str, sizes))}, batch {batch}, {dt.name}, one thread, median of {rounds} "
        f"x {calls} calls in a compiled loop")
    out(f"  {'product':34s} {'us':>8s} {'GFLOP/s':>8s}")
    for label, t, rate in rows:
        out(f"  {label:34s} {t * us:8.2f} {rate / 1e9:8.1f}")
    out(f"  {'products':34s} {products * us:8.2f}")
    out(f"  {'kernel':52s} {'us':>8s}")
    for label, t in kernels:
        out(f"  {label:52s} {t * us:8.2f}")
    out(f"  {'kernels, each looped alone':52s} {res['kernels'] * us:8.2f}")
    out(f"  {'kernels in one loop (a step but the gather)':52s} {res['step'] * us:8.2f}")
    out(f"  {'kernels beyond their products (alone, less products)':52s} "
        f"{(res['kernels'] - products) * us:8.2f}")
    out(f"register tile, matmul {tm}x{tk}x{tn} in L1: {tile_rate / 1e9:.1f} GFLOP/s; "
        f"the step's products at that rate: {flops_total / tile_rate * us:.2f} us")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,128,10", help="layer widths (default: digits)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--calls", type=int, default=20000, help="calls per timing")
    ap.add_argument("--rounds", type=int, default=5, help="timings per piece (median)")
    args = ap.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    if len(sizes) < 2 or min(sizes) < 1 or args.batch < 1 or args.calls < 1 or args.rounds < 1:
        ap.error("--sizes needs two or more positive widths; --batch, --calls and --rounds "
                 "must be positive")
    measure(sizes, args.batch, args.dtype, args.calls, args.rounds)


if __name__ == "__main__":
    main()

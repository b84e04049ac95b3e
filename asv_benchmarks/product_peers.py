"""The matrix products of one training step, fastbp's own against PyTorch's and NumPy's, at
one net's layer shapes, interleaved in one process: where a step's time goes when a whole fit
is slower than a peer's (docs/performance.md, fifteenth session: the wide net's weight
gradients).

For each layer it times the forward product ``A @ W``, the delta recursion's ``D @ W.T``
(hidden layers above the first) and the weight gradient ``A.T @ D``, and the weight gradient
together with a plain SGD step on W: fastbp's fused ``gradient_step`` (the gradient never
stored) against the peers' product followed by ``W -= lr * G``. fastbp runs its threaded code
(``gemm.THREADED_NO_STREAM``) on ``--threads`` Numba threads, as a threaded fit does; PyTorch
runs on as many (``torch.set_num_threads``); NumPy's BLAS keeps its own thread count (it cannot
be set after import). Each result is checked once against a float64 product before timing.

Usage (from the repository root)::

    python asv_benchmarks/product_peers.py                  # the wide net, 2 threads
    python asv_benchmarks/product_peers.py -w mnist --threads 1,2
    python asv_benchmarks/product_peers.py --sizes 784,512,10 --batch 64
"""
import argparse
import os
import sys
import time

import numba
import numpy as np

from fastbp.kernels.cpu import gemm
from fastbp.kernels.cpu import gradient_step as gs

if __package__ in (None, ""):  # run as a script: make ``common`` importable
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import WORKLOADS, warm_up
else:
    from .common import WORKLOADS, warm_up

LR = 1e-3
THREADED = gemm.THREADED_NO_STREAM
#: Seconds between two frameworks' timings: a thread pool keeps spinning for a while after its
#: last parallel region, and on two cores those threads would slow the next framework's (as
#: compare.py's pause).
PAUSE = 0.1
#: Seconds of untimed calls after each pause. On the Intel VM (twentieth session) the first
#: milliseconds after a pause this long ran slowly (the vCPUs idle, then waking): timed at
#: once, mnist's two-thread products read 13-37 GFLOP/s, fastbp's and PyTorch's alike,
#: against 144-250 in a loop without pauses; one untimed call was not enough.
WARM = 0.05


def products(sizes, batch, dtype, seed=0):
    """The step's products as (label, kind, A, B): kind "nn" ``A @ B``, "nt" ``A @ B.T``, "tn"
    ``A.T @ B``, "step" ``B -= lr * (A.T @ D)`` with ``B = (A, D, W)``; random data."""
    rng = np.random.default_rng(seed)
    acts = [rng.standard_normal((batch, s)).astype(dtype) for s in sizes]
    deltas = [None] + [(rng.standard_normal((batch, s)) * 1e-3).astype(dtype) for s in sizes[1:]]
    Ws = [(rng.standard_normal((a, b)) * 0.05).astype(dtype) for a, b in zip(sizes, sizes[1:])]
    out = []
    for l, W in enumerate(Ws):
        n_in, n_out = W.shape
        out.append((f"layer {l + 1} A @ W     {batch}x{n_in}x{n_out}", "nn", acts[l], W))
        if l > 0:
            out.append((f"layer {l + 1} D @ W.T   {batch}x{n_out}x{n_in}", "nt", deltas[l + 1], W))
        out.append((f"layer {l + 1} A.T @ D   {n_in}x{batch}x{n_out}", "tn", acts[l],
                    deltas[l + 1]))
        out.append((f"layer {l + 1} W -= lr G {n_in}x{batch}x{n_out}", "step",
                    acts[l], (deltas[l + 1], W)))
    return out


def flops(kind, A, B):
    """2 x the multiply-adds: A's elements times the output's other extent."""
    if kind == "step":
        B = B[0]  # (D, W): the product is A.T @ D
    return 2 * A.size * (B.shape[0] if kind == "nt" else B.shape[1])


def reference(kind, A, B):
    """The float64 result each framework is checked against (for "step": the new W)."""
    a = A.astype(np.float64)
    if kind == "nn":
        return a @ B
    if kind == "nt":
        return a @ B.T.astype(np.float64)
    if kind == "tn":
        return a.T @ B.astype(np.float64)
    D, W = B
    return W.astype(np.float64) - LR * (a.T @ D.astype(np.float64))


def runners(kind, A, B, torch=None):
    """{framework: (run(), result())} for one product; "step" runs on its own copy of W."""
    if kind == "step":
        D, W0 = B
        shape = (A.shape[1], D.shape[1])
    else:
        shape = {"nn": (A.shape[0], B.shape[1]), "nt": (A.shape[0], B.shape[0]),
                 "tn": (A.shape[1], B.shape[1])}[kind]
    out = {}
    if kind == "step":
        Wf = W0.copy()
        work = np.empty(D.size, A.dtype)
        # threaded=True: the threaded path, as the training driver's fused layers take it
        out["fastbp"] = (lambda: gs.weight_gradient_step(
            A, D, Wf, Wf, Wf, gs.PLAIN, LR, 0.0, 0.0, 0.9, 0.999, 1e-8, False, 1, work, True),
            lambda: Wf)
    else:
        fn = {"nn": gemm.matmul, "nt": gemm.matmul_nt, "tn": gemm.matmul_tn}[kind]
        c = np.empty(shape, A.dtype)
        out["fastbp"] = (lambda: fn(A, B, c, THREADED), lambda: c)
    cn = np.empty(shape, A.dtype)
    if kind == "nn":
        out["numpy"] = (lambda: np.dot(A, B, out=cn), lambda: cn)
    elif kind == "nt":
        out["numpy"] = (lambda: np.dot(A, B.T, out=cn), lambda: cn)
    elif kind == "tn":
        out["numpy"] = (lambda: np.dot(A.T, B, out=cn), lambda: cn)
    else:
        Wn = W0.copy()

        def numpy_step():
            np.dot(A.T, D, out=cn)
            np.multiply(cn, LR, out=cn)
            np.subtract(Wn, cn, out=Wn)
        out["numpy"] = (numpy_step, lambda: Wn)
    if torch is not None:
        ta = torch.from_numpy(A)
        tc = torch.from_numpy(np.empty(shape, A.dtype))
        if kind == "step":
            td, tw = torch.from_numpy(D), torch.from_numpy(W0.copy())

            def torch_step():
                torch.matmul(ta.T, td, out=tc)
                tw.add_(tc, alpha=-LR)
            out["torch"] = (torch_step, lambda: tw.numpy())
        else:
            tb = torch.from_numpy(B)
            op = {"nn": lambda: torch.matmul(ta, tb, out=tc),
                  "nt": lambda: torch.matmul(ta, tb.T, out=tc),
                  "tn": lambda: torch.matmul(ta.T, tb, out=tc)}[kind]
            out["torch"] = (op, lambda: tc.numpy())
    return out


def measure(sizes, batch, dtype="float32", threads=(2,), rounds=7, frameworks=None,
            out=print, pause=PAUSE, warm=WARM):
    """GFLOP/s per product, framework and thread count (medians over interleaved rounds):
    ``{(threads, label): {framework: GFLOP/s}}``. ``frameworks``: a subset of fastbp, numpy,
    torch (torch only where installed). ``pause``: seconds before each timing (``PAUSE``);
    ``warm``: seconds of untimed calls then, at least one (``WARM``)."""
    try:
        import torch
    except ImportError:
        torch = None
    wanted = set(frameworks or ("fastbp", "numpy", "torch"))
    if "torch" not in wanted:
        torch = None
    dtype = np.dtype(dtype)
    tol = 1e-3 if dtype == np.float32 else 1e-9
    cases = []
    for label, kind, A, B in products(sizes, batch, dtype):
        run = {k: v for k, v in runners(kind, A, B, torch).items() if k in wanted}
        ref = reference(kind, A, B)
        for name, (f, result) in run.items():
            f()  # compile / warm up, then check once (a "step" has now taken one step)
            if not np.allclose(result(), ref, rtol=tol, atol=tol * np.abs(ref).max()):
                raise AssertionError(f"{name}: {label} differs from the float64 product")
        cases.append((label, kind, flops(kind, A, B), run))
    before = numba.get_num_threads()
    before_torch = torch.get_num_threads() if torch is not None else None
    results = {}
    try:
        for t in threads:
            numba.set_num_threads(t)
            if torch is not None:
                torch.set_num_threads(t)
            times = {}
            for r in range(rounds):
                for label, kind, fl, run in cases:
                    names = list(run) if r % 2 == 0 else list(run)[::-1]
                    for name in names:
                        f = run[name][0]
                        reps = max(1, int(2e8 // fl))
                        time.sleep(pause)
                        warm_up(f, warm)  # untimed calls first (see WARM)
                        t0 = time.perf_counter()
                        for _ in range(reps):
                            f()
                        times.setdefault((label, name), []).append(
                            (time.perf_counter() - t0) / reps)
            for label, kind, fl, run in cases:
                results[(t, label)] = {name: fl / np.median(times[(label, name)]) / 1e9
                                       for name in run}
    finally:
        numba.set_num_threads(before)
        if torch is not None:
            torch.set_num_threads(before_torch)
    names = [n for n in ("fastbp", "numpy", "torch") if n in wanted
             and (n != "torch" or torch is not None)]
    out(f"{'-'.join(map(str, sizes))}, batch {batch}, {dtype.name}, GFLOP/s (median of "
        f"{rounds} interleaved rounds); numpy on its BLAS's own threads")
    out("threads  product" + " " * 31 + "".join(f"{n:>9s}" for n in names))
    for (t, label), rates in results.items():
        out(f"{t:>7d}  {label:38s}" + "".join(f"{rates[n]:9.1f}" for n in names))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-w", "--workload", default="wide", choices=sorted(WORKLOADS))
    p.add_argument("--sizes", help="a custom net instead of -w, e.g. 784,512,10")
    p.add_argument("--batch", type=int, help="batch size (for --sizes, or override -w's)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", default="2", help="comma-separated Numba/PyTorch thread counts")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("-f", "--frameworks", default="fastbp,numpy,torch")
    args = p.parse_args(argv)
    sizes, batch, _ = WORKLOADS[args.workload]
    if args.sizes:
        sizes = [int(v) for v in args.sizes.split(",")]
    batch = args.batch or batch
    threads = [int(v) for v in args.threads.split(",")]
    return measure(sizes, batch, args.dtype, threads, args.rounds,
                   args.frameworks.split(","))


if __name__ == "__main__":
    main()

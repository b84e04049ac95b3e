"""Thread scaling of fastbp's own threaded code: whole ``fit`` epochs with Numba's threads set
to 1 and to 2 (``--threads``), interleaved in one process, the threaded products used both
times. Usage: ``python asv_benchmarks/thread_scaling.py 784,256,128,10:128:8192
1024,2048,2048,1024:256:2048`` (layer sizes : batch : samples).

Why not simply ``NUMBA_NUM_THREADS=1``: with fewer than two Numba threads a fit runs
unthreaded, and its products of ``gemm.BLAS_MIN_MACS_F32`` multiply-adds and more then go to
BLAS, whose own threads make it a comparison of BLAS on two threads against fastbp on two
(the twelfth session's mistake, corrected in docs/performance.md). Here the driver is told
that its products may thread whatever the thread count, so one thread runs the same code.
"""
import argparse
import contextlib
import os
import sys
import time

import numba
import numpy as np

import fastbp
from fastbp import _engine_cpu, _threading

if __package__ in (None, ""):  # run as a script: make ``common`` importable
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import spec_data
else:
    from .common import spec_data


@contextlib.contextmanager
def own_threads(n):
    """Numba's threads set to ``n``, the training driver's threaded products allowed."""
    before = numba.get_num_threads()
    saved = _threading.products_may_thread, _engine_cpu.products_may_thread
    _threading.products_may_thread = _engine_cpu.products_may_thread = lambda: True
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)
        _threading.products_may_thread, _engine_cpu.products_may_thread = saved


def measure(spec, threads=(1, 2), rounds=7, out=print):
    """Samples/s of ``fit`` epochs on the net ``spec`` ("sizes:batch:samples") for each
    thread count in ``threads``, interleaved; returns {threads: median samples/s}."""
    sizes, batch, n, X, y = spec_data(spec)
    net = fastbp.Network(sizes, seed=0)
    opt = fastbp.SGD(lr=0.01, momentum=0.9)
    reps = max(1, 5000 // n)  # small sets: several epochs per timing
    with own_threads(max(threads)):
        net.fit(X, y, epochs=1, batch_size=batch, optimizer=opt, shuffle=False)  # compile
        if net._engine._fit_threaded is None:
            out(f"{spec}: too small to thread (gemm.PARALLEL_MIN_MACS); nothing to compare")
            return {}
    times = {t: [] for t in threads}
    for r in range(rounds):
        for t in (threads if r % 2 == 0 else threads[::-1]):  # alternate who goes first
            with own_threads(t):
                net.fit(X, y, epochs=1, batch_size=batch, optimizer=opt, shuffle=False)
                start = time.perf_counter()
                net.fit(X, y, epochs=reps, batch_size=batch, optimizer=opt, shuffle=False)
                times[t].append((time.perf_counter() - start) / reps)
    rates = {t: n / np.median(times[t]) for t in threads}
    first = threads[0]
    out(f"{spec}: " + ", ".join(
        f"{t} thread(s) {rates[t]:,.0f} samples/s ({rates[t] / rates[first]:.2f}x)"
        for t in threads) + f" (medians of {rounds} rounds)")
    return rates


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("specs", nargs="*", default=["784,256,128,10:128:8192"],
                    help="sizes:batch:samples, e.g. 784,256,128,10:128:8192")
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    threads = tuple(int(t) for t in args.threads.split(","))
    for spec in args.specs:
        measure(spec, threads, args.rounds)


if __name__ == "__main__":
    main()

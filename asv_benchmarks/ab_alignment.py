"""A/B: whole fit epochs with the engine's buffers cache-line aligned (fastbp/_aligned.py)
against the same buffers 16 bytes past a line (NumPy's usual alignment), interleaved in one
process. Usage: ``python asv_benchmarks/ab_alignment.py 784,256,128,10:128:8192
64,128,10:32:1792`` (layer sizes : batch : samples)."""
import os
import sys
import time

import numpy as np

import fastbp
from fastbp import _aligned, _engine_cpu

if __package__ in (None, ""):  # run as a script: make ``common`` importable
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import spec_data
else:
    from .common import spec_data

aligned, aligned_zeros = _aligned.aligned_empty, _aligned.aligned_zeros


def off_by_16(shape, dtype):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    k = 16 // dtype.itemsize
    return aligned((n + k,), dtype)[k:k + n].reshape(shape)


def off_by_16_zeros(shape, dtype):
    out = off_by_16(shape, dtype)
    out[...] = 0
    return out


def use(kind):
    """Make the engine allocate through ``kind``'s functions: the names it imported, and
    ``_aligned``'s own (``driver_workspaces`` and ``aligned_zeros`` call it by name)."""
    empty, zeros = ALLOCATORS[kind]
    _engine_cpu.aligned_empty, _engine_cpu.aligned_zeros = empty, zeros
    _aligned.aligned_empty = empty


ALLOCATORS = {"aligned": (aligned, aligned_zeros), "offset16": (off_by_16, off_by_16_zeros)}


def main(specs, rounds=7):
    for spec in specs:
        sizes, batch, n, X, y = spec_data(spec)
        nets = {}
        for name in ALLOCATORS:
            use(name)
            nets[name] = fastbp.Network(sizes, seed=0)
            nets[name].fit(X, y, epochs=1, batch_size=batch, shuffle=False)  # compile, allocate
        reps = max(1, 5000 // n)  # small sets: several epochs per timing
        times = {name: [] for name in nets}
        for _ in range(rounds):
            for name, net in nets.items():
                use(name)  # (fit allocates optimizer state)
                t = time.perf_counter()
                net.fit(X, y, epochs=reps, batch_size=batch, shuffle=False)
                times[name].append((time.perf_counter() - t) / reps)
        use("aligned")
        a, b = np.median(times["aligned"]), np.median(times["offset16"])
        print(f"{spec}: aligned {n / a:,.0f} samples/s, offset16 {n / b:,.0f}, ratio {b / a:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["784,256,128,10:128:8192", "64,128,10:32:1792"])

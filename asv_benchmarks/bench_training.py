"""Training on the three workloads of issue 3 (ReLU hidden, softmax + cross-entropy, SGD with
momentum, random data with a fixed seed): one step, one epoch, peak memory, samples/s and the
fraction of the GEMM floor. float32 is the tracked case; float64 runs for the time_ suites.

    digits 64-128-10, batch 32, 1792 samples; mnist 784-256-128-10, batch 128, 8192 samples;
    wide 1024-2048-2048-1024, batch 256, 2048 samples.
"""
import time

import numpy as np

from .common import (WORKLOADS, StepRunner, expected_fit_bytes, floor_samples_per_s,
                     make_data, make_network, make_optimizer, peak_rss_bytes, release_free_memory,
                     reset_peak_rss, rss_bytes, sgemm_rate)

NAMES = list(WORKLOADS)
DTYPES = ["float32", "float64"]


class Step:
    """One minibatch (gather, forward, loss, backward, SGD update) in the compiled driver."""
    params = (NAMES, DTYPES)
    param_names = ["workload", "dtype"]

    def setup(self, workload, dtype):
        sizes, batch, n = WORKLOADS[workload]
        self.runner = StepRunner(sizes, batch, n, dtype)
        self.b = 0

    def time_step(self, workload, dtype):
        self.runner.run(self.b, self.b + 1)
        self.b = (self.b + 1) % self.runner.n_batches


class Epoch:
    """One epoch of Network.fit (shuffling, chunking, bookkeeping included)."""
    params = (NAMES, DTYPES)
    param_names = ["workload", "dtype"]
    timeout = 180

    def setup(self, workload, dtype):
        sizes, self.batch, n = WORKLOADS[workload]
        self.X, self.y = make_data(sizes, n, dtype)
        self.net = make_network(sizes, dtype)
        self.opt = make_optimizer()
        self.net.fit(self.X[:self.batch * 2], self.y[:self.batch * 2], epochs=1,
                     batch_size=self.batch, optimizer=self.opt)  # compiles (or loads cache)

    def time_epoch(self, workload, dtype):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.opt)

    def peakmem_fit(self, workload, dtype):
        """Peak RSS of the process (interpreter, NumPy, Numba, data included) while fitting."""
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.opt)


class FitCall:
    """The fixed cost of one ``Network.fit`` call: a single minibatch of the digits net
    (float32, one batch of 32), so the time is mostly the call's Python and checks (input
    validation, the finiteness checks and recovery copy, the driver's dispatch) around about
    20 us of compiled step. It matters where a program calls fit once per epoch on a small
    dataset, as compare.py does: a digits epoch is about 1.4 ms."""
    timeout = 120

    def setup(self):
        sizes, self.batch, _ = WORKLOADS["digits"]
        self.X, self.y = make_data(sizes, self.batch, "float32")
        self.net = make_network(sizes, "float32")
        self.opt = make_optimizer()
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.opt,
                     shuffle=False)  # compiles (or loads the cache)

    def time_fit_one_batch(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.opt,
                     shuffle=False)


class Throughput:
    """float32 samples/s of fit (median over epochs), and that over the GEMM floor, with the
    SGEMM rate measured in the same process, interleaved with the epochs."""
    params = NAMES
    param_names = ["workload"]
    timeout = 300
    ROUNDS = {"digits": 7, "mnist": 5, "wide": 3}

    def setup(self, workload):
        self.sizes, self.batch, n = WORKLOADS[workload]
        self.X, self.y = make_data(self.sizes, n, "float32")
        self.net = make_network(self.sizes, "float32")
        self.opt = make_optimizer()
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.opt)
        self.workload_name = workload
        self._measured = None

    def _measure(self):
        if self._measured is None:
            sps, rates = [], []
            for _ in range(self.ROUNDS[self.workload_name]):
                # pauses: NumPy's BLAS (the SGEMM) and the kernels' BLAS (SciPy's OpenBLAS)
                # are two thread pools; let one stop spinning before the other runs
                time.sleep(0.15)
                h = self.net.fit(self.X, self.y, epochs=2, batch_size=self.batch,
                                 optimizer=self.opt)
                sps.extend(h["samples_per_s"])
                time.sleep(0.15)
                rates.append(sgemm_rate(reps=1))
            self._measured = (float(np.median(sps)), float(np.median(rates)))
        return self._measured

    def track_samples_per_s(self, workload):
        return self._measure()[0]
    track_samples_per_s.unit = "samples/s"

    def track_fraction_of_floor(self, workload):
        sps, rate = self._measure()
        return sps / floor_samples_per_s(self.sizes, rate)
    track_fraction_of_floor.unit = "x floor"

    def track_sgemm_gflops(self, workload):
        return self._measure()[1] / 1e9
    track_sgemm_gflops.unit = "GFLOP/s"


class FitMemory:
    """Peak RSS growth of fit over the baseline (after import and compile, before the data),
    divided by the issue's budget: parameters + gradients + optimizer state + one batch of
    activations + the dataset. The target is <= 1.3."""
    params = NAMES
    param_names = ["workload"]
    timeout = 300

    def setup(self, workload):
        sizes, batch, n = WORKLOADS[workload]
        X, y = make_data(sizes, 64, "float32")
        make_network(sizes, "float32").fit(X, y, epochs=1, batch_size=32,
                                           optimizer=make_optimizer())  # compile only
        del X, y
        if not reset_peak_rss():
            raise NotImplementedError("needs Linux /proc/self/clear_refs")

    def track_fit_memory_ratio(self, workload):
        sizes, batch, n = WORKLOADS[workload]
        # a cold cache's compile in setup leaves freed memory that stays resident: the fit's
        # arrays reused it, and the digits fit's growth read as 0 (seen with an empty
        # cache). Collected and handed back to the system first, the growth is the fit's.
        release_free_memory()
        base = rss_bytes()
        reset_peak_rss()
        X, y = make_data(sizes, n, "float32")
        net = make_network(sizes, "float32")
        net.fit(X, y, epochs=1, batch_size=batch, optimizer=make_optimizer())
        grown = peak_rss_bytes() - base
        return grown / expected_fit_bytes(sizes, batch, n, 1, "float32")
    track_fit_memory_ratio.unit = "x budget"


class Denormals:
    """One digits epoch (float32) on inputs scaled into the denormal range (x 1e-39), with
    fastbp's denormal flushing on (the default) and off: on x86 the IEEE run pays a microcode
    assist per denormal operation (``kernels/cpu/fpmode.py``)."""
    params = [True, False]
    param_names = ["flush"]
    timeout = 180

    def setup(self, flush):
        import fastbp
        sizes, self.batch, n = WORKLOADS["digits"]
        X, self.y = make_data(sizes, n, "float32")
        self.X = (X * np.float32(1e-39)).astype(np.float32)
        self.previous = fastbp.set_flush_denormals(flush)
        self.net = make_network(sizes, "float32")
        self.opt = make_optimizer()
        self.net.fit(self.X[:self.batch * 2], self.y[:self.batch * 2], epochs=1,
                     batch_size=self.batch, optimizer=self.opt)

    def teardown(self, flush):
        import fastbp
        fastbp.set_flush_denormals(self.previous)

    def time_epoch(self, flush):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.opt)

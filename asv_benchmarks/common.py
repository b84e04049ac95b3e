"""Shared pieces of the CPU benchmarks and of compare.py: workloads, data, FLOP counts, floor.

Nothing here is a benchmark (asv collects ``time_``/``peakmem_``/``track_``/``timeraw_``
names only), and nothing here imports a peer framework.

The floor: one training step of batch B costs, in matrix products,
``2*B*W`` (forward) + ``2*B*W`` (weight gradients) + ``2*B*(W - W_1)`` (deltas; the input layer
needs none), with W the number of weights and W_1 those of the first layer -- about
``6*B*W``. Divided by the SGEMM rate measured on this machine in the same run, that is the
fastest a step can possibly run; ``samples/s / floor_samples_per_s`` is the fraction reached.
"""
import time

import numpy as np

# name: (layer sizes, batch size, samples per epoch). ReLU hidden, softmax + cross-entropy, SGD.
WORKLOADS = {
    "digits": ([64, 128, 10], 32, 1792),
    "mnist": ([784, 256, 128, 10], 128, 8192),
    "wide": ([1024, 2048, 2048, 1024], 256, 2048),
}
LR, MOMENTUM = 0.01, 0.9
SEED = 0


def n_weights(sizes):
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def flops_per_sample(sizes):
    """Matrix-product FLOPs of one training step, per sample (see the module docstring)."""
    w = n_weights(sizes)
    return 2 * w + 2 * w + 2 * (w - sizes[0] * sizes[1])


def make_data(sizes, n, dtype="float32", seed=SEED):
    """Random standard-normal inputs and integer labels, fixed seed."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]), dtype=np.dtype(dtype).type)  # no float64 temporary
    y = rng.integers(0, sizes[-1], n)
    return X, y


def spec_data(spec):
    """The net and data of an A/B script's "sizes:batch:samples" argument (e.g.
    ``784,256,128,10:128:8192``): (sizes, batch, n, X, y), X float32 standard normal and y
    integer labels, from a fixed seed."""
    sizes, batch, n = spec.split(":")
    sizes = [int(v) for v in sizes.split(",")]
    batch, n = int(batch), int(n)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n)
    return sizes, batch, n, X, y


def one_hot(y, k, dtype="float32"):
    Y = np.zeros((y.shape[0], k), dtype=dtype)
    Y[np.arange(y.shape[0]), y] = 1
    return Y


def sgemm_rate(n=2048, reps=3, dtype="float32"):
    """Median FLOP/s of an n x n x n matrix product through NumPy's BLAS (all its threads)."""
    a = np.random.default_rng(1).standard_normal((n, n)).astype(dtype)
    b = np.random.default_rng(2).standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.dot(a, b, out=c)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.dot(a, b, out=c)
        times.append(time.perf_counter() - t)
    return 2.0 * n ** 3 / float(np.median(times))


def warm_up(run, seconds):
    """``run()`` untimed, at least once and until ``seconds`` have passed: after an idle
    pause the first milliseconds run slowly on the Intel VM (docs/performance.md, twentieth
    session), so the comparison scripts time only what follows."""
    t = time.perf_counter()
    run()
    while time.perf_counter() - t < seconds:
        run()


def floor_samples_per_s(sizes, rate):
    """Samples/s at the GEMM floor for a measured FLOP/s ``rate``."""
    return rate / flops_per_sample(sizes)


def make_network(sizes, dtype="float32", seed=SEED):
    import fastbp
    return fastbp.Network(sizes, activation="relu", output="softmax", loss="cross_entropy",
                          dtype=dtype, seed=seed)


def make_optimizer():
    import fastbp
    return fastbp.SGD(lr=LR, momentum=MOMENTUM)


def rss_bytes():
    """Current resident set size of this process (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            import os
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def release_free_memory():
    """Collect garbage, then ask the C allocator to hand its free pages back to the system
    (glibc's ``malloc_trim``; elsewhere only the collection), so that the next allocations
    show up in the resident set instead of reusing memory that was already resident."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss():
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes():
    """VmHWM (peak resident set since start or the last reset_peak_rss), in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def expected_fit_bytes(sizes, batch, n, n_state, dtype="float32"):
    """The memory fit needs by the issue's count: parameters + gradients + optimizer state +
    one batch of activations (A and Z of every layer, deltas) + the dataset (X and one-hot Y)."""
    item = np.dtype(dtype).itemsize
    n_params = n_weights(sizes) + sum(sizes[1:])
    acts = batch * (sum(sizes) + sum(sizes[1:]) + 2 * max(sizes[1:]) + sizes[-1])
    data = n * (sizes[0] + sizes[-1])
    return item * (n_params * (2 + n_state) + acts + data)


class StepRunner:
    """One workload's minibatch steps through the compiled driver ``train_batches``, with
    buffers laid out by its documented contract and the arguments fit would pass: read-only
    data, the same ``threaded`` and ``checked``, and the network's ``uses`` (so the same
    specialisation: what fit runs, without fit's Python)."""

    def __init__(self, sizes, batch, n, dtype="float32"):
        from fastbp._validation import read_only
        from fastbp.kernels import ACTIVATION_CODES, LOSS_CODES
        from fastbp.kernels.cpu.uses import Uses
        net = make_network(sizes, dtype)
        opt = make_optimizer()
        X, y = make_data(sizes, n, dtype)
        self.X, self.Y = read_only(X), read_only(one_hot(y, sizes[-1], dtype))
        self.order = np.random.default_rng(SEED).permutation(n).astype(np.int64)
        self.batch = batch
        self.n_batches = -(-n // batch)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.codes = np.asarray([ACTIVATION_CODES["relu"]] * (len(sizes) - 2)
                                + [ACTIVATION_CODES["softmax"]], dtype=np.int64)
        self.loss_code = LOSS_CODES["cross_entropy"]
        self.params = net.get_flat_parameters()
        self.grads = np.empty_like(self.params)
        self.state = np.zeros((opt.n_state, self.params.shape[0]), dtype)
        self.opt_code = opt.code
        self.uses = Uses.for_network(self.codes, self.loss_code, self.opt_code)
        self.hyper = opt.hyper(0, 1)
        self.step = np.zeros(2, dtype=np.int64)
        rows = min(batch, n)
        s = self.sizes
        self.A_buf = np.empty(rows * int(s.sum()), dtype)
        self.Z_buf = np.empty(rows * int(s[1:].sum()), dtype)
        self.D_buf = np.empty((2, rows * int(s[1:].max())), dtype)
        self.Y_buf = np.empty((rows, int(s[-1])), dtype)
        from fastbp._threading import threaded_flag
        from fastbp.training import checks_updates
        self.threaded = threaded_flag(s, rows, dtype)
        self.checked = True if checks_updates(self.params.shape[0], opt.n_state, dtype) else None
        self.run(0, 1)

    def run(self, first, last):
        from fastbp.kernels import train_batches
        return train_batches(self.X, self.Y, self.order, self.batch, first, last, self.sizes,
                             self.codes, self.loss_code, self.params, self.grads, self.state,
                             self.opt_code, self.hyper, self.step, self.A_buf, self.Z_buf,
                             self.D_buf, self.Y_buf, self.threaded, self.checked, self.uses)

"""GPU benchmarks: one training epoch of fastbp (device="cuda") against PyTorch CUDA eager
with TF32 off, float32, SGD with momentum, softmax + cross-entropy, random data, fixed seed.

    narrow 64-128-10, batch 32, 1792 samples (the digits-size net; fused single-block path)
    wide   1024-2048-2048-1024, batch 4096, 16384 samples (GEMM-bound; layered tiled path)

Every setup (the free function's too, as its ``setup`` attribute) raises NotImplementedError
without a real GPU (no CUDA, or only numba's simulator), which is how asv skips a benchmark
cleanly; PyTorch cases also skip when PyTorch
has no CUDA. ``time_epoch_resident`` keeps the dataset on the device (engine level: only the
epoch's order goes up, the loss comes back), ``time_epoch_fit`` is ``Network.fit`` with host
arrays (one host->device copy of the dataset per fit call). ``track_tflops`` reports achieved
matrix-product TFLOP/s and ``track_fp32_peak_tflops`` the FP32 (non-tensor-core) rate of a
large torch.mm with TF32 off on the same card, the reference for the wide net.
"""
import math
import os

import numpy as np

WORKLOADS = {"narrow": ([64, 128, 10], 32, 1792),
             "wide": ([1024, 2048, 2048, 1024], 4096, 16384)}
LR, MOMENTUM, SEED = 0.01, 0.9, 0


def _require_gpu():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise NotImplementedError("CUDA simulator: GPU benchmarks need a real GPU")
    try:
        from numba import cuda
        ok = cuda.is_available()
    except Exception:
        ok = False
    if not ok:
        raise NotImplementedError("no CUDA GPU")


def _torch_cuda():
    try:
        import torch
    except ImportError:
        raise NotImplementedError("PyTorch is not installed") from None
    if not torch.cuda.is_available():
        raise NotImplementedError("PyTorch has no CUDA")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def _data(sizes, n):
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((n, sizes[0])).astype(np.float32),
            rng.integers(0, sizes[-1], n))


def flops_per_epoch(sizes, n):
    """Matrix-product FLOPs of an epoch: forward 2BW, weight gradients 2BW, deltas
    2B(W - W_1) per batch of B samples (W weights, W_1 those of the first layer)."""
    w = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return n * (6 * w - 2 * sizes[0] * sizes[1])


class _FastBP:
    def __init__(self, sizes, batch, n):
        import fastbp
        from numba import cuda
        X, y = _data(sizes, n)
        self.net = fastbp.Network(sizes, activation="relu", output="softmax", dtype="float32",
                                  device="cuda", seed=SEED)
        self.X, self.y, self.batch = X, y, batch
        self.opt = fastbp.SGD(lr=LR, momentum=MOMENTUM)
        self.net.fit(X, y, epochs=1, batch_size=batch, optimizer=self.opt)  # compile, warm up
        eng = self.net._engine
        Y = np.eye(sizes[-1], dtype=np.float32)[y]
        self.Xd, self.Yd = cuda.to_device(X), cuda.to_device(Y)  # resident, used in place
        self.eng, self.n_batches = eng, math.ceil(n / batch)
        self.rng = np.random.default_rng(SEED)
        self.hyper = self.opt.hyper(0, 1)
        self.cuda = cuda

    def epoch_resident(self):
        order = self.rng.permutation(self.X.shape[0]).astype(np.int64)
        self.eng.begin_fit(self.Xd, self.Yd, self.batch)  # no copy: device arrays in place
        # returns after the loss copy, so the epoch's kernels have finished
        self.eng.run_batches(order, 0, self.n_batches, self.opt.code, self.hyper,
                             self.net._opt_state, self.net._opt_step)
        self.eng.end_fit()

    def epoch_fit(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.opt)


class _Torch:
    def __init__(self, sizes, batch, n):
        torch = _torch_cuda()
        torch.manual_seed(SEED)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        dev = torch.device("cuda")
        self.model = torch.nn.Sequential(*layers).to(dev)
        X, y = _data(sizes, n)
        self.X = torch.from_numpy(X).to(dev)
        self.y = torch.from_numpy(y).to(dev)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        self.loss = torch.nn.CrossEntropyLoss()
        self.batch, self.torch = batch, torch
        self.epoch_resident()  # warm up (cuBLAS handles, allocator)

    def epoch_resident(self):
        torch = self.torch
        order = torch.randperm(self.X.shape[0], device=self.X.device)
        total = torch.zeros((), device=self.X.device)
        for r0 in range(0, self.X.shape[0], self.batch):
            idx = order[r0:r0 + self.batch]
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.X[idx]), self.y[idx])
            loss.backward()
            self.opt.step()
            total += loss.detach() * idx.shape[0]
        total.item()  # the epoch loss comes back, as with fastbp; also synchronises

    epoch_fit = epoch_resident


class Epoch:
    params = (list(WORKLOADS), ["fastbp", "torch"])
    param_names = ["workload", "impl"]
    timeout = 600
    number = 1
    repeat = (3, 10, 60.0)

    def setup(self, workload, impl):
        _require_gpu()
        sizes, batch, n = WORKLOADS[workload]
        self.runner = (_FastBP if impl == "fastbp" else _Torch)(sizes, batch, n)

    def time_epoch_resident(self, workload, impl):
        self.runner.epoch_resident()

    def time_epoch_fit(self, workload, impl):
        self.runner.epoch_fit()

    def track_tflops(self, workload, impl):
        import time
        sizes, _, n = WORKLOADS[workload]
        self.runner.epoch_resident()
        t = time.perf_counter()
        self.runner.epoch_resident()
        return flops_per_epoch(sizes, n) / (time.perf_counter() - t) / 1e12

    track_tflops.unit = "TFLOP/s"


def _peak_setup():
    _require_gpu()
    _torch_cuda()


def track_fp32_peak_tflops():
    """FP32 matrix-product rate of the card (torch.mm 8192^3, TF32 off): the reference the
    wide net's TFLOP/s is compared with."""
    torch = _torch_cuda()
    import time
    a = torch.randn(8192, 8192, device="cuda")
    b = torch.randn(8192, 8192, device="cuda")
    torch.mm(a, b)
    torch.cuda.synchronize()
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(a, b)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * 8192 ** 3 / best / 1e12


track_fp32_peak_tflops.unit = "TFLOP/s"
# asv skips a benchmark whose setup raises NotImplementedError; raised from the body of a
# function benchmark it counts as a failure ("asv run --quick" without a GPU reported it so)
track_fp32_peak_tflops.setup = _peak_setup

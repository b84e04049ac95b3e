"""Side-by-side training speed: fastbp against what users would pick instead, in one process.

Every framework trains the same network (ReLU hidden layers, or ``--activation tanh``,
``sigmoid``, ``elu``, ``softplus`` or ``gelu``; softmax + cross-entropy, SGD with
momentum 0.9, no weight decay) on the same float data, in the same batch order (the data are
shuffled once with a fixed seed and every framework walks them in order, ``shuffle=False``).
The measurements are interleaved: each round runs every framework in turn and one GEMM
timing (in the run's dtype), and the table reports medians over the rounds, so a slow moment
on a shared machine hits everyone alike. A framework's timing in a round covers as many
consecutive epochs as it needs for at least ``MIN_TIMED`` seconds (counted once, during
warm-up): a single 1 ms epoch right after another framework ran measures cache and
branch-predictor warm-up more than training. Before it, after a pause that lets the previous
framework's threads stop spinning, the framework runs untimed epochs for ``WARM`` seconds
(the first milliseconds after an idle pause run slowly). Peers run only where installed
(``pip install -e ".[peers]"``):

  fastbp       ``Network.fit(X, y, epochs=k)``: one call for a timing's k epochs (the input
               checks run once per call; every peer below prepares its data once too)
  fastbp-fit1  ``Network.fit(X, y, epochs=1)`` once per epoch: the checks every epoch
  numpy        the same step written in plain NumPy (BLAS products, NumPy elementwise)
  torch        PyTorch CPU eager: nn.Sequential + CrossEntropyLoss + optim.SGD
  jax-step     JAX, one jitted step per minibatch, looped in Python
  jax-scan     JAX, the whole epoch jitted as one lax.scan over the minibatches
  sklearn      scikit-learn MLPClassifier(solver="sgd").partial_fit, one epoch per call

The floor is the step's matrix-product FLOPs (see common.flops_per_sample, ~6 * batch *
weights) over the GEMM rate measured in this run in the run's dtype (n x n products through
NumPy's BLAS: SGEMM for float32, DGEMM for float64).

Examples (from the repository root)::

    python asv_benchmarks/compare.py                       # digits, mnist, wide
    python asv_benchmarks/compare.py -w digits --rounds 15 --markdown out.md --png out.png
    python asv_benchmarks/compare.py --curve               # step time vs batch and vs FLOPs
"""
import argparse
import gc
import math
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``common`` importable
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import (LR, MOMENTUM, WORKLOADS, flops_per_sample, floor_samples_per_s,
                        make_data, sgemm_rate, warm_up)
else:
    from .common import (LR, MOMENTUM, WORKLOADS, flops_per_sample, floor_samples_per_s,
                         make_data, sgemm_rate, warm_up)

PAUSE = 0.15  # seconds between timed epochs of different frameworks
MIN_TIMED = 0.1  # seconds of consecutive epochs per timing
#: Seconds of untimed epochs (at least one) after each pause, before the timing: on the Intel
#: VM the first milliseconds after an idle pause ran slowly for every framework (mnist
#: epochs timed straight after a 0.1 s sleep: medians 54-67 ms against 49-51 without one,
#: twentieth session), so a timing measures the steady state a long fit runs in.
WARM = 0.05
FRAMEWORKS = ["fastbp", "fastbp-fit1", "numpy", "torch", "jax-step", "jax-scan", "sklearn"]
#: Hidden layers' activation (``--activation``), read by every trainer when it is built.
ACT = "relu"
#: Every input times this (``--input-scale``): 1e-39 puts float32 inputs in the denormal range,
#: where x86 arithmetic is slow unless the framework flushes denormals (fastbp and JAX do).
INPUT_SCALE = 1.0


def _numpy_activation(z):
    """The hidden activation in place."""
    if ACT == "relu":
        np.maximum(z, 0, out=z)
    elif ACT == "tanh":
        np.tanh(z, out=z)
    elif ACT == "sigmoid":
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1
        np.reciprocal(z, out=z)
    elif ACT == "elu":
        np.copyto(z, np.expm1(z), where=z <= 0)
    elif ACT == "softplus":
        np.logaddexp(z, 0, out=z)
    else:  # gelu, exact (erf) form
        z *= 0.5 * (1 + _erf(z / np.sqrt(2.0)))


def _erf(x):
    """erf elementwise (scipy's where installed; NumPy has none)."""
    try:
        from scipy.special import erf
        return erf(x).astype(x.dtype, copy=False)
    except ImportError:  # pragma: no cover
        return np.vectorize(math.erf, otypes=[x.dtype])(x)


def _numpy_activation_grad(z, a, delta):
    """delta *= f'(z), from the pre-activations ``z`` or the activations ``a``."""
    if ACT == "relu":
        delta *= a > 0
    elif ACT == "tanh":
        delta *= 1 - a * a
    elif ACT == "sigmoid":
        delta *= a * (1 - a)
    elif ACT == "elu":
        delta *= np.where(z > 0, 1, a + 1)
    elif ACT == "softplus":
        delta *= -np.expm1(-a)  # sigmoid(z) = 1 - exp(-softplus(z))
    else:
        delta *= (0.5 * (1 + _erf(z / np.sqrt(2.0)))
                  + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi))


def _init_params(sizes, dtype, seed=0):
    """He-normal weights, zero biases: every framework starts from these same values."""
    rng = np.random.default_rng(seed)
    Ws = [(rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(dtype)
          for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(b, dtype) for b in sizes[1:]]
    return Ws, bs


# -- the trainers: each is built once (setup, compile) and then runs whole epochs ----------------

class Trainer:
    """A framework's training loop on prepared data: ``epoch()`` trains one epoch and
    ``epochs(k)`` k consecutive ones (the timed unit; one epoch after another unless the
    framework has a call for several)."""

    def epochs(self, k):
        for _ in range(k):
            self.epoch()


class FastbpTrainer(Trainer):
    """fastbp as a training run calls it: ``fit(X, y, epochs=k)``, one call for a timing's
    k epochs. Its input checks and conversion (X's finiteness, the labels' one-hot rows)
    then run once per k epochs, as every peer here prepares its data once, in its
    constructor. ``fastbp-fit1`` times one ``fit`` call per epoch instead."""
    name = "fastbp"

    def __init__(self, sizes, batch, X, y, dtype):
        import fastbp
        self.net = fastbp.Network(sizes, activation=ACT, output="softmax",
                                  loss="cross_entropy", dtype=dtype, seed=0)
        self.net.set_parameters(*_init_params(sizes, dtype))
        self.opt = fastbp.SGD(lr=LR, momentum=MOMENTUM)
        self.X, self.y, self.batch = X, y, batch

    def fit(self, k):
        # the same optimizer instance: its momentum carries over from call to call
        self.net.fit(self.X, self.y, epochs=k, batch_size=self.batch, optimizer=self.opt,
                     shuffle=False)

    def epochs(self, k):
        self.fit(k)

    def epoch(self):
        self.fit(1)


class FastbpFitPerEpochTrainer(FastbpTrainer):
    """fastbp called once per epoch (``fit(X, y, epochs=1)`` in a loop, as a program that
    evaluates between epochs would): every call checks and converts X and y again."""
    name = "fastbp-fit1"

    def epochs(self, k):
        Trainer.epochs(self, k)


class NumpyTrainer(Trainer):
    name = "numpy"

    def __init__(self, sizes, batch, X, y, dtype):
        self.Ws, self.bs = _init_params(sizes, dtype)
        self.vW = [np.zeros_like(W) for W in self.Ws]
        self.vb = [np.zeros_like(b) for b in self.bs]
        self.X, self.batch = X, batch
        self.Y = np.eye(sizes[-1], dtype=dtype)[y]

    def step(self, x, Y):
        acts, zs = [x], [None]
        for l, (W, b) in enumerate(zip(self.Ws, self.bs)):
            z = acts[-1] @ W
            z += b
            zs.append(z.copy() if ACT in ("elu", "gelu") else None)
            if l < len(self.Ws) - 1:
                _numpy_activation(z)
            acts.append(z)
        z = acts[-1]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        delta = (z - Y) / x.shape[0]
        for l in range(len(self.Ws) - 1, -1, -1):
            gW = acts[l].T @ delta
            gb = delta.sum(axis=0)
            if l > 0:
                delta = delta @ self.Ws[l].T
                _numpy_activation_grad(zs[l], acts[l], delta)
            self.vW[l] *= MOMENTUM
            self.vW[l] += gW
            self.vb[l] *= MOMENTUM
            self.vb[l] += gb
            self.Ws[l] -= LR * self.vW[l]
            self.bs[l] -= LR * self.vb[l]

    def epoch(self):
        B = self.batch
        for i in range(0, self.X.shape[0], B):
            self.step(self.X[i:i + B], self.Y[i:i + B])


class TorchTrainer(Trainer):
    name = "torch"

    def __init__(self, sizes, batch, X, y, dtype):
        import torch
        self.torch = torch
        layers = []
        Ws, bs = _init_params(sizes, dtype)
        for l, (W, b) in enumerate(zip(Ws, bs)):
            lin = torch.nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if l < len(Ws) - 1:
                layers.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                               "sigmoid": torch.nn.Sigmoid, "elu": torch.nn.ELU,
                               "softplus": torch.nn.Softplus, "gelu": torch.nn.GELU}[ACT]())
        self.model = torch.nn.Sequential(*layers).to(getattr(torch, dtype))
        self.loss = torch.nn.CrossEntropyLoss()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        self.batches = [(Xt[i:i + batch], yt[i:i + batch]) for i in range(0, X.shape[0], batch)]

    def epoch(self):
        for xb, yb in self.batches:
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(xb), yb).backward()
            self.opt.step()


def _jax_parts(sizes, dtype):
    import jax
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # else JAX silently computes in float32
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        h = x
        for l, (W, b) in enumerate(params):
            h = h @ W + b
            if l < len(params) - 1:
                h = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
                     "elu": jax.nn.elu, "softplus": jax.nn.softplus,
                     "gelu": lambda v: jax.nn.gelu(v, approximate=False)}[ACT](h)
        logp = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(carry, batch):
        params, vel = carry
        x, y = batch
        g = jax.grad(loss_fn)(params, x, y)
        vel = jax.tree_util.tree_map(lambda v, gi: MOMENTUM * v + gi, vel, g)
        params = jax.tree_util.tree_map(lambda p, v: p - LR * v, params, vel)
        return (params, vel), None

    Ws, bs = _init_params(sizes, dtype)
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(Ws, bs)]
    vel = jax.tree_util.tree_map(jnp.zeros_like, params)
    return jax, jnp, step, params, vel


class JaxStepTrainer(Trainer):
    name = "jax-step"

    def __init__(self, sizes, batch, X, y, dtype):
        jax, jnp, step, self.params, self.vel = _jax_parts(sizes, dtype)
        self.step = jax.jit(lambda p, v, x, yb: step((p, v), (x, yb))[0])
        self.batches = [(jnp.asarray(X[i:i + batch]), jnp.asarray(y[i:i + batch].astype(np.int32)))
                        for i in range(0, X.shape[0], batch)]
        self.jax = jax

    def epoch(self):
        p, v = self.params, self.vel
        for x, yb in self.batches:
            p, v = self.step(p, v, x, yb)
        self.params, self.vel = self.jax.block_until_ready((p, v))


class JaxScanTrainer(Trainer):
    name = "jax-scan"

    def __init__(self, sizes, batch, X, y, dtype):
        jax, jnp, step, self.params, self.vel = _jax_parts(sizes, dtype)
        nb = X.shape[0] // batch  # whole batches under scan; the remainder as single steps
        self.xs = jnp.asarray(X[:nb * batch].reshape(nb, batch, X.shape[1]))
        self.ys = jnp.asarray(y[:nb * batch].reshape(nb, batch).astype(np.int32))
        self.rest = None
        if nb * batch < X.shape[0]:
            self.rest = (jnp.asarray(X[nb * batch:]), jnp.asarray(y[nb * batch:].astype(np.int32)))
            self.one = jax.jit(lambda p, v, x, yb: step((p, v), (x, yb))[0])
        self.run = jax.jit(lambda p, v, xs, ys: jax.lax.scan(step, (p, v), (xs, ys))[0],
                           donate_argnums=(0, 1))
        self.jax = jax

    def epoch(self):
        p, v = self.run(self.params, self.vel, self.xs, self.ys)
        if self.rest is not None:
            p, v = self.one(p, v, *self.rest)
        self.params, self.vel = self.jax.block_until_ready((p, v))


class SklearnTrainer(Trainer):
    name = "sklearn"

    def __init__(self, sizes, batch, X, y, dtype):
        import warnings

        from sklearn.neural_network import MLPClassifier
        warnings.filterwarnings("ignore", module="sklearn")
        self.clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]),
                                 activation=SKLEARN_ACTIVATIONS[ACT],
                                 solver="sgd", alpha=0.0, batch_size=batch,
                                 learning_rate_init=LR, momentum=MOMENTUM,
                                 nesterovs_momentum=False, shuffle=False, random_state=0)
        self.X, self.y = X, y
        self.classes = np.arange(sizes[-1])

    def epoch(self):
        self.clf.partial_fit(self.X, self.y, classes=self.classes)


TRAINERS = {"fastbp": FastbpTrainer, "fastbp-fit1": FastbpFitPerEpochTrainer,
            "numpy": NumpyTrainer, "torch": TorchTrainer, "jax-step": JaxStepTrainer,
            "jax-scan": JaxScanTrainer, "sklearn": SklearnTrainer}
_MODULE = {"torch": "torch", "jax-step": "jax", "jax-scan": "jax", "sklearn": "sklearn"}


#: The hidden activations scikit-learn's MLPClassifier offers (under its own names).
SKLEARN_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic"}
ACTIVATIONS = ["relu", "tanh", "sigmoid", "elu", "softplus", "gelu"]


def available(name):
    if name == "sklearn" and ACT not in SKLEARN_ACTIVATIONS:
        return False
    mod = _MODULE.get(name)
    if mod is None:
        return True
    import importlib.util
    return importlib.util.find_spec(mod) is not None


# -- measurement ----------------------------------------------------------------------------------

def gemm_name(dtype):
    """"SGEMM" or "DGEMM": the BLAS product whose rate sets a run's floor."""
    return "DGEMM" if np.dtype(dtype) == np.float64 else "SGEMM"


_XLA_GEMM = {}


def xla_gemm_rate(dtype="float32", n=2048, reps=1):
    """FLOP/s of an n^3 product in ``dtype`` through JAX/XLA (its own GEMM code, not
    OpenBLAS), or None without JAX: the machine may run faster products than the BLAS floor
    shows."""
    if not available("jax-scan"):
        return None
    import jax
    import jax.numpy as jnp
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)  # else jnp silently makes float32
    if dtype.name not in _XLA_GEMM:
        f = jax.jit(jnp.dot)
        ab = [jnp.asarray(np.random.default_rng(i).standard_normal((n, n)), dtype=dtype)
              for i in (1, 2)]
        f(*ab).block_until_ready()
        _XLA_GEMM[dtype.name] = f, ab
    f, (a, b) = _XLA_GEMM[dtype.name]
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2.0 * a.shape[0] ** 3 / float(np.median(times))


def compare_workload(name, sizes, batch, n, frameworks, rounds, dtype="float32", log=print):
    """Interleaved epochs of every framework plus one GEMM timing per round (in ``dtype``);
    returns a dict."""
    X, y = make_data(sizes, n, dtype)
    if INPUT_SCALE != 1.0:
        X = (X * INPUT_SCALE).astype(dtype)
    perm = np.random.default_rng(1).permutation(n)
    X, y = np.ascontiguousarray(X[perm]), y[perm]
    trainers, reps = {}, {}
    for fw in frameworks:
        if not available(fw):
            log(f"  {fw}: not installed (or no {ACT} activation), skipped")
            continue
        t = time.perf_counter()
        tr = TRAINERS[fw](sizes, batch, X, y, dtype)
        tr.epoch()  # compile / warm up
        ready = time.perf_counter() - t
        t = time.perf_counter()
        tr.epoch()
        reps[fw] = max(1, math.ceil(MIN_TIMED / (time.perf_counter() - t)))
        trainers[fw] = tr
        log(f"  {fw}: ready ({ready:.1f} s incl. first epoch; {reps[fw]} epoch(s) per timing)")
    secs = {fw: [] for fw in trainers}
    rates, xla_rates = [], []
    for _ in range(rounds):
        for fw, tr in trainers.items():
            gc.collect()
            # let the previous framework's worker threads (OpenBLAS, OpenMP, Eigen) stop
            # spin-waiting first, so no framework pays for another's idle pool
            time.sleep(PAUSE)
            warm_up(tr.epoch, WARM)
            t = time.perf_counter()
            tr.epochs(reps[fw])
            secs[fw].append((time.perf_counter() - t) / reps[fw])
        time.sleep(PAUSE)
        rates.append(sgemm_rate(reps=1, dtype=dtype))
        if any(fw.startswith("jax") for fw in trainers):
            time.sleep(PAUSE)
            xla_rates.append(xla_gemm_rate(dtype))
    rate = float(np.median(rates))
    xla = float(np.median(xla_rates)) / 1e9 if xla_rates else None
    floor = floor_samples_per_s(sizes, rate)
    sps = {fw: n / float(np.median(s)) for fw, s in secs.items()}
    return {"name": name, "sizes": sizes, "batch": batch, "n": n, "dtype": dtype,
            "rounds": rounds, "gemm": gemm_name(dtype), "gemm_gflops": rate / 1e9,
            "xla_gemm_gflops": xla,
            "floor": floor, "sps": sps,
            "spread": {fw: (n / max(s), n / min(s)) for fw, s in secs.items()}}


def format_table(results, markdown=False):
    lines = []
    head = ["workload", "framework", "samples/s", "fastbp / this", "fraction of floor"]
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    else:
        lines.append(f"{head[0]:<8} {head[1]:<10} {head[2]:>12} {head[3]:>14} {head[4]:>18}")
    for r in results:
        fb = r["sps"].get("fastbp")
        label = f"{r['name']}"
        for fw, s in sorted(r["sps"].items(), key=lambda kv: -kv[1]):
            ratio = f"{fb / s:.2f}x" if fb else "-"
            cells = [label, fw, f"{s:,.0f}", ratio, f"{s / r['floor']:.3f}"]
            if markdown:
                lines.append("| " + " | ".join(cells) + " |")
            else:
                lines.append(f"{cells[0]:<8} {cells[1]:<10} {cells[2]:>12} {cells[3]:>14} "
                             f"{cells[4]:>18}")
        note = f"{r['gemm']} {r['gemm_gflops']:.0f} GFLOP/s"
        if r.get("xla_gemm_gflops"):
            note += f" (XLA: {r['xla_gemm_gflops']:.0f})"
        floor_cells = [label, "floor", f"{r['floor']:,.0f}", "", note]
        if markdown:
            lines.append("| " + " | ".join(floor_cells) + " |")
        else:
            lines.append(f"{floor_cells[0]:<8} {floor_cells[1]:<10} {floor_cells[2]:>12} "
                         f"{'':>14}   {floor_cells[4]}")
    return "\n".join(lines)


def write_png(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), squeeze=False)
    for ax, r in zip(axes[0], results):
        items = sorted(r["sps"].items(), key=lambda kv: -kv[1])
        names = [k for k, _ in items]
        vals = [v for _, v in items]
        colors = ["tab:red" if k.startswith("fastbp") else "tab:gray" for k in names]
        ax.barh(names[::-1], vals[::-1], color=colors[::-1])
        ax.axvline(r["floor"], color="k", ls="--", lw=1, label="GEMM floor")
        ax.set_title(f"{r['name']} {'-'.join(map(str, r['sizes']))}, batch {r['batch']}",
                     fontsize=9)
        ax.set_xlabel("samples/s (median, higher is better)")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cost_curve(dtype="float32", log=print, rounds=5):
    """fastbp step time against batch size (mnist net) and against FLOPs (square nets).

    Each point: the median over ``rounds`` of an epoch of fit over >= 64 steps, divided by
    the number of steps; with the GEMM floor of the same step (in ``dtype``) measured
    alongside.
    """
    import fastbp
    rows = []

    def point(sizes, batch):
        steps = max(64, min(512, int(2e9 / (flops_per_sample(sizes) * batch)) + 1))
        n = steps * batch
        X, y = make_data(sizes, n, dtype)
        net = fastbp.Network(sizes, activation=ACT, output="softmax", dtype=dtype, seed=0)
        opt = fastbp.SGD(lr=LR, momentum=MOMENTUM)
        net.fit(X[:2 * batch], y[:2 * batch], epochs=1, batch_size=batch, optimizer=opt)
        ts, rates = [], []
        for _ in range(rounds):
            time.sleep(PAUSE)  # NumPy's BLAS threads (the GEMM below) stop spinning first
            warm_up(lambda: net.fit(X[:2 * batch], y[:2 * batch], epochs=1,
                                    batch_size=batch, optimizer=opt), WARM)
            t = time.perf_counter()
            net.fit(X, y, epochs=1, batch_size=batch, optimizer=opt, shuffle=False)
            ts.append((time.perf_counter() - t) / steps)
            time.sleep(PAUSE)
            rates.append(sgemm_rate(reps=1, dtype=dtype))
        step = float(np.median(ts))
        fl = flops_per_sample(sizes) * batch
        rate = float(np.median(rates))
        return step, fl, rate

    log("\ncost curve 1: step time vs batch size, 784-256-128-10")
    log(f"{'batch':>6} {'step us':>10} {'us/sample':>10} {'GFLOP/s':>9} {'x floor':>8}")
    for batch in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]:
        step, fl, rate = point([784, 256, 128, 10], batch)
        rows.append(("batch", batch, step, fl, rate))
        log(f"{batch:>6} {step * 1e6:>10.1f} {step * 1e6 / batch:>10.2f} {fl / step / 1e9:>9.1f} "
            f"{fl / rate / step:>8.2f}")
    log("\ncost curve 2: step time vs FLOPs, w-w-w-10 nets, batch 128")
    log(f"{'width':>6} {'MFLOP':>9} {'step us':>10} {'GFLOP/s':>9} {'x floor':>8}")
    for w in [16, 32, 64, 128, 256, 512, 1024, 2048]:
        sizes = [w, w, w, 10]
        step, fl, rate = point(sizes, 128)
        rows.append(("width", w, step, fl, rate))
        log(f"{w:>6} {fl / 1e6:>9.2f} {step * 1e6:>10.1f} {fl / step / 1e9:>9.1f} "
            f"{fl / rate / step:>8.2f}")
    return rows


def main(argv=None):
    global LR, ACT, INPUT_SCALE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-w", "--workloads", default="digits,mnist,wide",
                    help="comma-separated: " + ", ".join(WORKLOADS))
    ap.add_argument("-f", "--frameworks", default=",".join(FRAMEWORKS),
                    help="comma-separated subset of: " + ", ".join(FRAMEWORKS))
    ap.add_argument("--rounds", type=int, default=0,
                    help="interleaved rounds (default: digits 15, mnist 7, wide 3)")
    ap.add_argument("--sizes", help="a custom net instead of -w, e.g. 64,128,10 (ReLU hidden)")
    ap.add_argument("--batch", type=int, help="batch size for --sizes (or override -w's)")
    ap.add_argument("--samples", type=int, default=0, help="samples per epoch for --sizes")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--activation", default="relu", choices=ACTIVATIONS,
                    help="hidden layers' activation, for every framework (scikit-learn "
                         "has no elu, softplus or gelu: it sits those out)")
    ap.add_argument("--lr", type=float, default=LR,
                    help=f"learning rate for every framework (default {LR}; lower it where "
                         "small batches diverge on the random data)")
    ap.add_argument("--input-scale", type=float, default=1.0, metavar="S",
                    help="multiply every input by S, for every framework (1e-39: float32 "
                         "denormal inputs, to see which frameworks flush denormals)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    ap.add_argument("--png", metavar="FILE", help="also write a bar chart")
    ap.add_argument("--curve", action="store_true",
                    help="print fastbp's cost curve (step time vs batch size and vs FLOPs)")
    ap.add_argument("--no-table", action="store_true", help="with --curve: the curve only")
    args = ap.parse_args(argv)
    frameworks = [f for f in args.frameworks.split(",") if f]
    for f in frameworks:
        if f not in TRAINERS:
            ap.error(f"unknown framework {f!r}")
    default_rounds = {"digits": 15, "mnist": 7, "wide": 3}
    LR = args.lr  # every trainer reads the module's LR when it is built (or traced)
    ACT = args.activation
    INPUT_SCALE = args.input_scale
    results = []
    if not (args.curve and args.no_table):
        import numba
        print(f"# fastbp compare: python {sys.version.split()[0]}, numpy {np.__version__}, "
              f"numba {numba.__version__}, {os.cpu_count()} CPUs, dtype {args.dtype}, "
              f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}, "
              f"load average {os.getloadavg()[0]:.2f}"
              + (f", inputs x {INPUT_SCALE:g}" if INPUT_SCALE != 1.0 else ""))
        if args.sizes:
            sizes = [int(v) for v in args.sizes.split(",")]
            batch = args.batch or 32
            n = args.samples or batch * max(8, min(512, int(3e9 / (flops_per_sample(sizes)
                                                                     * batch)) + 1))
            work = [("custom", (sizes, batch, n))]
        else:
            work = [(w, WORKLOADS[w]) for w in args.workloads.split(",") if w]
            if args.batch:
                work = [(w, (s, args.batch, n)) for w, (s, _, n) in work]
        for name, (sizes, batch, n) in work:
            print(f"{name}: {'-'.join(map(str, sizes))}, batch {batch}, {n} samples")
            rounds = args.rounds or default_rounds.get(name, 5)
            results.append(compare_workload(name, sizes, batch, n, frameworks, rounds,
                                            args.dtype))
        print()
        print(format_table(results))
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(f"Command: `python asv_benchmarks/compare.py "
                        f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n")
                f.write(format_table(results, markdown=True) + "\n")
            print(f"wrote {args.markdown}")
        if args.png:
            write_png(results, args.png)
            print(f"wrote {args.png}")
    if args.curve:
        cost_curve(args.dtype)
    return results


if __name__ == "__main__":
    main()

"""Train on the GPU with device="cuda", or explain clearly why it cannot run here.

    python examples/gpu_training.py [--epochs 20]

The same code as on the CPU: only ``device="cuda"`` changes. The CUDA kernels need an NVIDIA
GPU, its driver, and numba's CUDA support (pip install 'fastbp[cuda]'). Without them the
script prints what is missing and exits with status 0, so it is safe to run anywhere.
"""
import argparse
import sys
import time

import numpy as np

import fastbp


def cuda_problem():
    """None when a CUDA GPU is usable, else a sentence saying what is missing."""
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba always ships numba.cuda
        return f"numba.cuda cannot be imported ({exc})"
    try:
        if not cuda.is_available():
            return ("numba.cuda.is_available() is False: no NVIDIA GPU, driver or CUDA "
                    "toolkit was found (install the driver and pip install 'fastbp[cuda]')")
    except Exception as exc:  # broken driver installs raise here
        return f"CUDA initialization failed ({type(exc).__name__}: {exc})"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    problem = cuda_problem()
    if problem is not None:
        print(f"GPU example skipped: {problem}.")
        print("Everything else in fastbp runs on the CPU: use device='cpu' (the default).")
        return None
    from numba import config
    simulated = bool(config.ENABLE_CUDASIM)
    n, width = (256, 16) if simulated else (20000, 512)  # the simulator is very slow
    if simulated:
        print("NUMBA_ENABLE_CUDASIM=1: running a tiny problem on numba's CUDA simulator")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 32)).astype(np.float32)
    y = (X[:, :8].sum(axis=1) > 0).astype(np.int64) + 2 * (X[:, 8] > 0)
    try:
        net = fastbp.Network([32, width, width, 4], activation="relu", output="softmax",
                             device="cuda", seed=0)
    except RuntimeError as exc:  # e.g. this build has no CUDA backend
        print(f"GPU example skipped: {exc}")
        return None
    start = time.perf_counter()
    hist = net.fit(X, y, epochs=args.epochs, batch_size=64 if simulated else 256,
                   optimizer=fastbp.Adam(3e-3))
    seconds = time.perf_counter() - start
    accuracy = float((net.predict(X) == y).mean())
    print(f"{net.device}: {args.epochs} epochs in {seconds:.2f} s "
          f"({hist.epochs[-1]['samples_per_s']:,.0f} samples/s), loss {hist['loss'][-1]:.4f}, "
          f"training accuracy {accuracy:.4f}")
    cpu = net.to("cpu")  # the same parameters, now on the host
    agree = float((cpu.predict(X) == net.predict(X)).mean())
    print(f"CPU copy agrees with the GPU predictions on {agree:.2%} of samples")
    return accuracy


if __name__ == "__main__":
    sys.exit(0 if main() is not False else 1)

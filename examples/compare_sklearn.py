"""Fit-time comparison: fastbp.sklearn.MLPClassifier vs sklearn.neural_network.MLPClassifier.

    python examples/compare_sklearn.py [--repeats 3] [--max-iter 30] [--threads N]

Same data (digits, 75/25 split), same hyper-parameters, same random_state, for several network
and batch sizes. Prints, per configuration, the best-of-N fit time of each, the ratio, and the
test accuracies. fastbp's one-time JIT compilation is done before timing (it is cached on disk
after the first run). ``dtype=None`` (the default) follows X, here float64 like scikit-learn;
"float32" is shown too. Timings depend on the machine and on what else runs on it: close other
work, and use --threads 1 to take BLAS threading out of the comparison.
"""
import argparse
import platform
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLP

from fastbp.sklearn import MLPClassifier as FastMLP

CONFIGS = [  # (hidden_layer_sizes, batch_size): scikit-learn's defaults first, then smaller
    ((100,), "auto"),  # batches, where its per-minibatch Python overhead dominates
    ((256, 128), 64),
    ((64,), 32),
    ((32,), 16),
    ((16,), 8),
    ((32,), 4),
]


def best_time(make, X, y, repeats):
    times, model = [], None
    for _ in range(repeats):
        model = make()
        start = time.perf_counter()
        model.fit(X, y)
        times.append(time.perf_counter() - start)
    return min(times), model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads")
    parser.add_argument("--quick", action="store_true", help="one small configuration")
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    configs = CONFIGS[3:4] if args.quick else CONFIGS
    limiter = None
    if args.threads:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(args.threads)
    print(f"{platform.processor() or platform.machine()}, digits {X_train.shape}, "
          f"max_iter={args.max_iter}, tol=0 (every run does max_iter epochs), "
          f"best of {args.repeats}")
    print(f"{'hidden':>12} {'batch':>6} {'sklearn s':>10} {'fastbp64 s':>11} {'ratio':>6} "
          f"{'fastbp32 s':>11} {'ratio':>6}  accuracy sk / fb64 / fb32")
    ratios = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for hidden, batch in configs:
            kw = dict(hidden_layer_sizes=hidden, batch_size=batch, max_iter=args.max_iter,
                      random_state=0, tol=0.0, n_iter_no_change=args.max_iter + 1)
            for dtype in (None, "float32"):  # compile outside the timing
                FastMLP(dtype=dtype, **dict(kw, max_iter=1)).fit(X_train[:64], y_train[:64])
            t_sk, sk = best_time(lambda: SkMLP(**kw), X_train, y_train, args.repeats)
            t64, f64 = best_time(lambda: FastMLP(**kw), X_train, y_train, args.repeats)
            t32, f32 = best_time(lambda: FastMLP(dtype="float32", **kw), X_train, y_train,
                                 args.repeats)
            ratios.append((t_sk / t64, t_sk / t32))
            print(f"{str(hidden):>12} {str(batch):>6} {t_sk:10.3f} {t64:11.3f} "
                  f"{t_sk / t64:5.1f}x {t32:11.3f} {t_sk / t32:5.1f}x  "
                  f"{sk.score(X_test, y_test):.4f} / {f64.score(X_test, y_test):.4f} / "
                  f"{f32.score(X_test, y_test):.4f}")
    if limiter is not None:
        limiter.restore_original_limits()
    return ratios


if __name__ == "__main__":
    main()

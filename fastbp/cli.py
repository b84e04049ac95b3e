"""Command line: ``fastbp train`` (the main job) and ``fastbp info``.

Every error becomes one readable line on stderr and exit status 2; never a traceback.
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

from . import data as D


def _layers(text):
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes comma-separated integers, e.g. 128,64; "
                                         f"got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--layers sizes must be >= 1; got {text!r}")
    return sizes


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``fastbp: error: ...``), exit status 2."""

    def error(self, message):
        self.exit(2, f"{_one_line(f'{self.prog}: error: {message}')} "
                     f"(see '{self.prog} -h')\n")


def _one_line(text):
    return " ".join(str(text).split())


def build_parser():
    p = _Parser(prog="fastbp", description="Fast backpropagation for MLPs.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a network and report test accuracy/loss",
                       description="Train on the bundled digits set (default), a synthetic set, "
                                   "or your own CSV/NPZ file, then evaluate on a held-out split.")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=["digits", *D.SYNTHETIC], default=None,
                     help="built-in data set (default: digits)")
    src.add_argument("--data", metavar="PATH", help="your own .csv (header row) or .npz (X, y)")
    t.add_argument("--target", default=None,
                   help="target column of the CSV (required for CSV) or array name in the NPZ "
                        "(default y)")
    t.add_argument("--task", choices=["auto", "classify", "regress"], default="auto")
    t.add_argument("--layers", type=_layers, default=[128], help="hidden sizes, e.g. 128,64")
    t.add_argument("--activation", default="relu")
    t.add_argument("--output", default=None, help="output activation (default from the task)")
    t.add_argument("--loss", default=None, help="mse, cross_entropy, binary_cross_entropy")
    t.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    t.add_argument("--lr", type=float, default=None, help="default 0.03 (sgd) or 0.001 (adam)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    t.add_argument("--schedule", choices=["constant", "step", "exponential", "cosine"],
                   default="constant")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--test-size", type=float, default=0.2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--device", default="cpu")
    t.add_argument("--no-scale", action="store_true", help="do not standardize the features")
    t.add_argument("--save", metavar="PATH", help="save the trained model (.npz)")
    t.add_argument("--plot", metavar="PNG", help="write training curves (needs matplotlib)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("info", help="versions, threading, BLAS and CUDA availability")
    return p


def _load(args):
    if args.data:
        ext = os.path.splitext(args.data)[1].lower()
        if ext == ".npz":
            X, y = D.read_npz(args.data, args.target or "y")
        elif ext in (".csv", ".txt"):
            if not args.target:
                raise ValueError("--target is required with a CSV file: name the label column")
            X, y, _ = D.read_csv(args.data, args.target)
        else:
            raise ValueError(f"--data must be a .csv or .npz file; got {args.data!r}")
        task = D.guess_task(y) if args.task == "auto" else args.task
        return X, y, task, os.path.basename(args.data)
    name = args.dataset or "digits"
    X, y = D.load_digits() if name == "digits" else D.SYNTHETIC[name](seed=args.seed)
    task = D.TASKS[name] if args.task == "auto" else args.task
    return X, y, task, name


def train(args, out=sys.stdout):
    import fastbp
    X, y, task, name = _load(args)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    classes = None
    if task == "classify":
        y, classes = D.encode_labels(y)
        n_out = len(classes)
        output = args.output or "softmax"
        loss = args.loss or ("cross_entropy" if output == "softmax" else None)
    else:
        if np.asarray(y).dtype.kind not in "biuf":
            raise ValueError("regression needs a numeric target; the target column holds text "
                             "(use --task classify)")
        y = np.asarray(y, dtype=np.float64)
        n_out = 1 if y.ndim == 1 else y.shape[1]
        output, loss = args.output or "identity", args.loss or "mse"
    Xtr, Xte, ytr, yte = D.train_test_split(np.asarray(X, dtype=np.float64), y, args.test_size,
                                            args.seed)
    if not args.no_scale:
        sc = D.Standardizer().fit(Xtr)
        Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)
    net = fastbp.Network([X.shape[1], *args.layers, n_out], activation=args.activation,
                         output=output, loss=loss, dtype=args.dtype, device=args.device,
                         seed=args.seed)
    if args.optimizer == "sgd":
        opt = fastbp.SGD(lr=0.03 if args.lr is None else args.lr, momentum=args.momentum,
                         schedule=args.schedule)
    else:
        opt = fastbp.Adam(lr=1e-3 if args.lr is None else args.lr, schedule=args.schedule)
    print(f"fastbp {fastbp.__version__}: {name}, {Xtr.shape[0]} train / {Xte.shape[0]} test "
          f"samples, network {net.layer_sizes} ({args.activation}, {net.output} + "
          f"{net.loss_name}), {args.optimizer} lr={opt.lr}, {args.dtype} on {args.device}",
          file=out)
    t0 = time.perf_counter()
    hist = net.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, optimizer=opt,
                   validation_data=(Xte, yte), progress=not args.quiet)
    wall = time.perf_counter() - t0
    line = f"test loss {net.loss(Xte, yte):.4f}"
    if task == "classify":
        line = f"test accuracy {net.accuracy(Xte, yte):.4f}  " + line
    else:
        rmse = float(np.sqrt(np.mean((net.predict(Xte).reshape(yte.shape) - yte) ** 2)))
        line = f"test RMSE {rmse:.4f}  " + line
    if len(hist):
        line += f"  train loss {hist['loss'][-1]:.4f}"
    print(line, file=out)
    if len(hist):
        later = hist["samples_per_s"][1:] or hist["samples_per_s"]
        print(f"{len(hist)} epochs in {wall:.2f} s; first epoch {hist['seconds'][0]:.2f} s "
              f"(includes one-time compilation, cached for later runs); median "
              f"{np.median(later):,.0f} samples/s", file=out)
    if args.save:
        net.save(args.save)
        print(f"saved model to {args.save}", file=out)
    if args.plot:
        from .plot import plot_history
        plot_history(hist, path=args.plot, title=f"fastbp on {name}")
        print(f"wrote training curves to {args.plot}", file=out)
    return 0


def info(out=sys.stdout):
    import numba
    import scipy

    import fastbp
    from ._devices import cuda_available
    from .threads import blas_info, threading_layer
    print(f"fastbp   {fastbp.__version__}", file=out)
    print(f"python   {platform.python_version()} ({platform.machine()}, "
          f"{os.cpu_count()} cpus)", file=out)
    print(f"numpy    {np.__version__}", file=out)
    print(f"scipy    {scipy.__version__}", file=out)
    print(f"numba    {numba.__version__}", file=out)
    print(f"numba threading layer {threading_layer()}, {numba.config.NUMBA_NUM_THREADS} "
          f"threads", file=out)
    print(f"BLAS     {blas_info()}", file=out)
    print(f"CUDA GPU {'usable' if cuda_available() else 'not available'}", file=out)
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return info()
        _check_args(args)
        return train(args)
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError, ImportError, ArithmeticError) as exc:
        print(f"fastbp: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line; FASTBP_DEBUG=1 shows the traceback
        if os.environ.get("FASTBP_DEBUG"):
            raise
        print(f"fastbp: internal error: {type(exc).__name__}: {_one_line(exc)} (set "
              f"FASTBP_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 1


def _check_args(args):
    for name in ("epochs", "batch_size"):
        v = getattr(args, name)
        if v < (0 if name == "epochs" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be >= "
                             f"{0 if name == 'epochs' else 1}; got {v}")
    if args.lr is not None and not (args.lr > 0 and np.isfinite(args.lr)):
        raise ValueError(f"--lr must be a positive number; got {args.lr}")
    if not 0 < args.test_size < 1:
        raise ValueError(f"--test-size must lie in (0, 1); got {args.test_size}")
    if args.target and not args.data:
        raise ValueError("--target goes with --data")
    if args.save:  # fail before training, not after it
        folder = os.path.dirname(os.path.abspath(args.save))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--save: folder {folder!r} does not exist")
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"--save: folder {folder!r} is not writable")
        if os.path.isdir(args.save):
            raise IsADirectoryError(f"--save: {args.save!r} is a folder; give a file name")


if __name__ == "__main__":
    sys.exit(main())

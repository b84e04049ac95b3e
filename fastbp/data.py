"""Datasets for the command line and examples: bundled digits, synthetic sets, user files."""
import csv
import gzip
import os

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))


def load_digits():
    """The handwritten digits set bundled with fastbp: X (1797, 64) in [0, 16], y (1797,)."""
    with gzip.open(os.path.join(_HERE, "datasets", "digits.csv.gz"), "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


def spirals(n=1500, classes=3, noise=0.2, seed=0):
    """Interleaved spirals, one arm per class: X (n, 2), y (n,) int."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    t = rng.uniform(0.0, 1.0, n)
    angle = 4.0 * t + 2 * np.pi * y / classes + rng.normal(0, noise, n)
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    return X, y


def xor(n=1000, noise=0.1, seed=0):
    """Noisy XOR of two inputs around {0, 1}: X (n, 2), y (n,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, 2))
    X = bits + rng.normal(0, noise, size=(n, 2))
    return X, (bits[:, 0] ^ bits[:, 1]).astype(np.int64)


def sine(n=1000, noise=0.05, seed=0):
    """Regression of sin(x) on [-pi, pi] with Gaussian noise: X (n, 1), y (n,)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-np.pi, np.pi, size=(n, 1))
    return X, np.sin(X[:, 0]) + rng.normal(0, noise, n)


SYNTHETIC = {"spirals": spirals, "xor": xor, "sine": sine}
TASKS = {"digits": "classify", "spirals": "classify", "xor": "classify", "sine": "regress"}


def read_csv(path, target):
    """Read a CSV with a header row; ``target`` names the label column, the rest are features.

    Feature columns must be numeric; the target may be numeric or text (class names).
    Raises ValueError naming the file, line and column for anything malformed.
    Returns X (n, d) float64, y (n,) (float64 or str), and the feature names.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: {path!r}")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text CSV file ({exc.reason} at byte "
                         f"{exc.start})") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: malformed CSV ({exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise ValueError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise ValueError(f"{path}: no column named {target!r}; columns are {header}")
    t = header.index(target)
    features = [h for i, h in enumerate(header) if i != t]
    if not features:
        raise ValueError(f"{path}: no feature columns besides the target {target!r}")
    X = np.empty((len(rows) - 1, len(features)))
    y = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields, expected {len(header)}")
        k = 0
        for i, cell in enumerate(row):
            if i == t:
                y.append(cell.strip())
                continue
            try:
                X[line - 2, k] = float(cell)
            except ValueError:
                raise ValueError(f"{path}, line {line}, column {header[i]!r}: not a number: "
                                 f"{cell!r}") from None
            k += 1
    if not np.isfinite(X).all():
        raise ValueError(f"{path}: features contain NaN or Inf")
    try:
        y = np.array([float(v) for v in y])
    except ValueError:
        y = np.array(y)
    return X, y, features


def read_npz(path, target="y"):
    """Arrays ``X`` and ``target`` (default "y") from an .npz file (never unpickled)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: {path!r}")
    try:
        with np.load(path, allow_pickle=False) as d:
            if "X" not in d.files or target not in d.files:
                raise ValueError(f"{path}: needs arrays 'X' and {target!r}; has {d.files}")
            return np.asarray(d["X"]), np.asarray(d[target])
    except ValueError as exc:
        if str(exc).startswith(path):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError...
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") \
            from None


def encode_labels(y):
    """Class labels -> (int codes 0..K-1, the sorted classes)."""
    classes, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64), classes


def guess_task(y):
    """'classify' for text or small sets of integer values, else 'regress'."""
    if y.dtype.kind in "US":
        return "classify"
    if np.all(y == np.round(y)) and len(np.unique(y)) <= 50:
        return "classify"
    return "regress"


def train_test_split(X, y, test_size=0.2, seed=0):
    """Random split (seeded permutation); returns X_train, X_test, y_train, y_test."""
    n = X.shape[0]
    n_test = int(round(n * test_size))
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves an empty train or test set for "
                         f"{n} samples")
    perm = np.random.default_rng(seed).permutation(n)
    te, tr = perm[:n_test], perm[n_test:]
    return X[tr], X[te], y[tr], y[te]


class Standardizer:
    """Zero mean, unit variance per feature, fitted on the training data."""

    def fit(self, X):
        self.mean = X.mean(0)
        std = X.std(0)
        self.scale = np.where(std > 0, std, 1.0)
        return self

    def transform(self, X):
        return (X - self.mean) / self.scale

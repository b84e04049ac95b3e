"""scikit-learn estimators: drop-in ``MLPClassifier`` and ``MLPRegressor`` on fastbp's kernels.

The estimators take scikit-learn's constructor parameters with the same meanings and defaults,
and train with the same mathematics as ``sklearn.neural_network``:

* the same losses (log-loss on softmax / logistic outputs, half squared error on an identity
  output), averaged the same way, with the L2 penalty ``alpha`` on the weights only, added per
  minibatch as ``alpha * W / batch_weight_sum``;
* the same optimizers: SGD with scikit-learn's momentum and Nesterov formulas (also when
  "invscaling" or "adaptive" change the learning rate), and Adam with scikit-learn's epsilon
  placement;
* the same initialization, shuffling, early-stopping split and stopping rules, drawn from the
  same random stream, so that with ``dtype="float64"`` a fit follows scikit-learn's to
  rounding error.

Only the arithmetic differs: a whole epoch runs in one compiled function built from
``fastbp.kernels`` (forward, output_delta, hidden_delta, weight_gradients, sgd/adam updates),
without Python between minibatches. The reported loss is scikit-learn's too (log-loss on
probabilities clipped at machine epsilon). Sparse inputs are densified.

This module imports scikit-learn; ``import fastbp`` alone never does.
"""
import math
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from numba import njit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(est, *args, **kwargs):
        return est._validate_data(*args, **kwargs)

from .kernels.activations import (ACTIVATION_CODES, ADAM, BINARY_CROSS_ENTROPY, CROSS_ENTROPY,
                                  MSE, SGD)
from .kernels.cpu import adam_range, hidden_delta, output_delta, sgd_range, weight_gradients
from .kernels.cpu.network import (_act, _b, _delta, _w, _z, forward_network, n_weights,
                                  predict_network)
from .kernels.cpu.uses import Uses, activations_only
from .kernels.cpu.views import borrowed_2d, borrowed_flat
from ._devices import parse_device
from ._aligned import aligned_empty, aligned_zeros, driver_workspaces
from ._validation import read_only
from ._threading import threaded_flag

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn activation names -> fastbp kernel names
_ACT = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
        "softmax": "softmax"}
_LOSS = {"softmax": CROSS_ENTROPY, "logistic": BINARY_CROSS_ENTROPY, "identity": MSE}
_PREDICT_ROWS = 4096


# -- compiled training core ---------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _sample_loss(A, Y, r, loss_code, eps_clip):
    """Row r's loss exactly as scikit-learn computes it: half squared error averaged over
    outputs, or log-loss on probabilities clipped to [eps, 1 - eps]. (Indexes the 2-D arrays:
    a row view would cost a reference-count round trip per sample.)"""
    K = A.shape[1]
    total = 0.0
    if loss_code == MSE:
        for j in range(K):
            d = float(A[r, j]) - float(Y[r, j])
            total += d * d
        return total / (2.0 * K)
    for j in range(K):
        p = min(max(float(A[r, j]), eps_clip), 1.0 - eps_clip)
        if Y[r, j] != 0:
            total -= Y[r, j] * math.log(p)
        if loss_code == BINARY_CROSS_ENTROPY and Y[r, j] != 1:
            total -= (1.0 - Y[r, j]) * math.log(1.0 - p)
    return total


@njit(cache=True, error_model="numpy")
def _batch_loss_grad(params, sizes, codes, loss_code, alpha, X, Y, sw, weighted, idx, r0, m,
                     rows, A_buf, Z_buf, D_buf, Y_buf, grads, threaded, uses=None):
    """scikit-learn's ``_backprop`` on rows ``idx[r0:r0+m]``: loss and gradients into grads.

    Returns (loss, weight sum). loss = weighted mean data loss + 0.5 alpha |W|^2 / weight sum;
    gradients = (A^T (sw * delta) + alpha W) / weight sum (intercepts without alpha).
    ``uses`` (``kernels/cpu/uses.py``, without an optimizer): the activations and loss to
    compile, as the engine passes them; None compiles every one.
    """
    L = sizes.shape[0] - 1
    K = sizes[L]
    eps_clip = np.finfo(params.dtype).eps
    # uncounted views (kernels/cpu/views.py) and element loops: no per-row or per-layer
    # reference counting, which at small batches cost more than the arithmetic
    A0 = _act(A_buf, sizes, rows, 0, m)
    Yb = borrowed_2d(borrowed_flat(Y_buf), 0, m, K)
    sws = 0.0
    for r in range(m):
        i = idx[r0 + r]
        for j in range(X.shape[1]):
            A0[r, j] = X[i, j]
        for j in range(K):
            Yb[r, j] = Y[i, j]
        sws += sw[i]
    if sws <= 0.0:
        return 0.0, sws
    forward_network(params, sizes, codes, m, rows, A_buf, Z_buf, threaded, uses)
    Z = _z(Z_buf, sizes, rows, L, m)
    A = _act(A_buf, sizes, rows, L, m)
    out_code = codes[L - 1]
    data = 0.0
    for r in range(m):
        w = sw[idx[r0 + r]] if weighted else 1.0
        if w != 0.0:
            data += w * _sample_loss(A, Yb, r, loss_code, eps_clip)
    nw = n_weights(sizes)
    sq = 0.0
    for k in range(nw):
        sq += float(params[k]) * float(params[k])
    loss = (data + 0.5 * alpha * sq) / sws
    # Canonical link: delta = A - Y for softmax/log-loss, logistic/log-loss, identity/squared.
    delta = _delta(D_buf, 0, m, K)
    output_delta(Z, A, Yb, out_code, loss_code, 1.0, delta, uses)
    for r in range(m):
        w = (sw[idx[r0 + r]] if weighted else 1.0) / sws
        for j in range(K):
            delta[r, j] *= w
    scale_w = alpha / sws
    for l in range(L - 1, -1, -1):
        dW = _w(grads, sizes, l)
        weight_gradients(_act(A_buf, sizes, rows, l, m), delta, dW, _b(grads, sizes, l),
                         threaded)
        if scale_w != 0.0:
            W = _w(params, sizes, l)
            for a in range(W.shape[0]):
                for b in range(W.shape[1]):
                    dW[a, b] += scale_w * W[a, b]
        if l > 0:
            prev = _delta(D_buf, (L - l) % 2, m, sizes[l])
            hidden_delta(delta, _w(params, sizes, l), _z(Z_buf, sizes, rows, l, m),
                         _act(A_buf, sizes, rows, l, m), codes[l - 1], prev, threaded,
                         activations_only(uses))
            delta = prev
    return loss, sws


@njit(cache=True, error_model="numpy")
def _run_epoch(X, Y, sw, weighted, order, batch_size, sizes, codes, loss_code, alpha, params,
               grads, state, opt, lr, momentum, nesterov, beta1, beta2, eps, step, A_buf, Z_buf,
               D_buf, Y_buf, threaded, uses=None):
    """One epoch of minibatch updates in ``order``; returns sum over batches of loss * rows.
    ``threaded``: None (every product on this thread, no threaded code compiled), True or
    ``gemm.THREADED_NO_STREAM`` (large products over Numba's threads; see
    ``kernels.cpu.gemm.matmul`` and ``_threading.threaded_flag``). ``uses``: as for
    ``_batch_loss_grad`` (the network's activations and loss: the others are not compiled).

    SGD uses ``sgd_range`` (torch's formula, velocity u); scikit-learn's velocity is -lr * u,
    identical while lr is constant; the caller rescales u when lr changes. Adam uses
    ``adam_range`` with eps / sqrt(1 - beta2**t), which is exactly scikit-learn's placement of
    epsilon (outside the bias correction). Batches whose weights sum to 0 are skipped.
    """
    n = order.shape[0]
    n_params = params.shape[0]
    rows = Y_buf.shape[0]
    total = 0.0
    for r0 in range(0, n, batch_size):
        m = min(n, r0 + batch_size) - r0
        loss, sws = _batch_loss_grad(params, sizes, codes, loss_code, alpha, X, Y, sw, weighted,
                                     order, r0, m, rows, A_buf, Z_buf, D_buf, Y_buf, grads,
                                     threaded, uses)
        if sws <= 0.0:
            continue
        total += loss * m
        if opt == SGD:
            sgd_range(params, grads, state[0], lr, momentum, nesterov, 0.0, 0, n_params)
        else:
            step[0] += 1
            t = step[0]
            eps_t = eps / math.sqrt(1.0 - beta2 ** t)
            adam_range(params, grads, state[0], state[1], t, lr, beta1, beta2, eps_t, 0.0, False,
                       0, n_params)
    return total


def _drop_stale_cache():
    """Remove this module's numba cache when fastbp's CPU kernels changed since it was written.

    numba keys a cached function on its own file only, but the cached machine code embeds the
    kernels it calls: after the kernels change (an edit, an upgrade in place) the stale code
    would still load, and could crash. A stamp of the kernels' sources (path, size, mtime)
    sits next to the cache; when it differs, this module's cache files are deleted, so the
    functions recompile once.
    """
    import glob
    import hashlib
    import os
    import sys
    try:
        cache_dir = _run_epoch._cache._cache_path  # numba internals: skip quietly if absent
    except AttributeError:
        return
    kernels = sys.modules[adam_range.py_func.__module__].__file__
    folder = os.path.dirname(os.path.dirname(os.path.abspath(kernels)))  # kernels/
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.py"), recursive=True)):
        st = os.stat(path)
        digest.update(f"{os.path.relpath(path, folder)}:{st.st_size}:{st.st_mtime_ns};".encode())
    stamp = digest.hexdigest()
    stamp_file = os.path.join(cache_dir, "sklearn.kernels-stamp")
    try:
        with open(stamp_file) as f:
            if f.read() == stamp:
                return
    except OSError:
        pass
    for path in glob.glob(os.path.join(cache_dir, "sklearn.*.nb[ic]")):
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with open(stamp_file, "w") as f:
            f.write(stamp)
    except OSError:
        pass


_drop_stale_cache()


# -- helpers --------------------------------------------------------------------------------------
def _dense(X):
    return X.toarray() if sp.issparse(X) else X


class _Workspace:
    """Buffers for ``rows`` rows of a network with layer widths ``sizes``."""

    def __init__(self, sizes, rows, dtype):
        self.rows = rows
        self.A, self.Z, self.D, self.Y = driver_workspaces(sizes, rows, dtype)


class _BaseMLP(BaseEstimator):
    """Shared implementation of MLPClassifier and MLPRegressor (not public)."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "dtype": [StrOptions({"float32", "float64"}), None],
    }

    # -- layout and parameters -----------------------------------------------------------------
    def _layout(self):
        sizes = np.asarray(self._layer_units, dtype=np.int64)
        acts = [_ACT[self.activation]] * (len(sizes) - 2) + [_ACT[self.out_activation_]]
        codes = np.asarray([ACTIVATION_CODES[a] for a in acts], dtype=np.int64)
        return sizes, codes, _LOSS[self.out_activation_]

    def _uses(self):
        """The activations and loss the compiled epoch and prediction compile for (as the
        engine's ``Uses.for_network``, so the two share their compiled kernels): a relu net
        compiles no sigmoid, tanh, softplus or GELU loops, and no other loss."""
        _, codes, loss_code = self._layout()
        return Uses.for_network(codes, loss_code)

    def _flat_from_attributes(self):
        """The flat parameter vector (every W row-major, then every b) in ``self._dtype``.

        Uses the stored vector when ``coefs_``/``intercepts_`` are still its views, else packs
        them (after unpickling, or when a user replaced them).
        """
        flat = getattr(self, "_flat", None)
        dtype = self._fit_dtype
        if (flat is not None and flat.dtype == dtype
                and all(a.base is flat for a in self.coefs_ + self.intercepts_)):
            return flat
        return np.concatenate([np.asarray(a, dtype=dtype).ravel()
                               for a in self.coefs_ + self.intercepts_])

    def _set_flat(self, flat):
        """Store ``flat`` and expose coefs_/intercepts_ as views of it."""
        self._flat = flat
        units = self._layer_units
        coefs, intercepts, w = [], [], 0
        b = sum(i * o for i, o in zip(units[:-1], units[1:]))
        for n_in, n_out in zip(units[:-1], units[1:]):
            coefs.append(flat[w:w + n_in * n_out].reshape(n_in, n_out))
            intercepts.append(flat[b:b + n_out])
            w += n_in * n_out
            b += n_out
        self.coefs_, self.intercepts_ = coefs, intercepts

    def _init_coef(self, fan_in, fan_out, dtype):
        # scikit-learn's Glorot uniform initialization, same random draws.
        factor = 2.0 if self.activation == "logistic" else 6.0
        bound = np.sqrt(factor / (fan_in + fan_out))
        coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = self._random_state.uniform(-bound, bound, fan_out)
        return coef.astype(dtype, copy=False), intercept.astype(dtype, copy=False)

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self._layer_units = list(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        coefs, intercepts = [], []
        for n_in, n_out in zip(layer_units[:-1], layer_units[1:]):
            c, i = self._init_coef(n_in, n_out, dtype)
            coefs.append(c)
            intercepts.append(i)
        self._set_flat(np.concatenate([a.ravel() for a in coefs + intercepts]))
        self._best_flat = self._flat.copy()
        self._opt = None
        if self.solver in ("sgd", "adam"):
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    # -- fitting ---------------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        parse_device(self.device)
        if self.device != "cpu":
            raise ValueError(
                f"device={self.device!r}: the scikit-learn estimators train on the CPU only in "
                "this version; use fastbp.Network(..., device='cuda') for GPU training")
        hidden = self.hidden_layer_sizes
        if not hasattr(hidden, "__iter__"):
            hidden = [hidden]
        hidden = list(hidden)
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if first_pass:
            # None follows X as scikit-learn does: float32 stays float32, the rest is float64.
            self._fit_dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
        X = np.ascontiguousarray(_dense(X), dtype=self._fit_dtype)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, self._fit_dtype)
        elif list(layer_units) != list(self._layer_units):
            raise ValueError(f"the network's layer sizes {self._layer_units} do not match "
                             f"{layer_units}: hidden_layer_sizes changed since the last fit "
                             "(fit again with warm_start=False)")
        Y = np.ascontiguousarray(y, dtype=self._fit_dtype)
        src = self._flat_from_attributes()
        flat = aligned_empty(len(src), self._fit_dtype)  # a copy: the attributes stay as they are
        flat[:] = src
        if self.solver in ("sgd", "adam"):
            flat = self._fit_stochastic(X, Y, sample_weight, flat, incremental)
        else:
            flat = self._fit_lbfgs(X, Y, sample_weight, flat)
        self._set_flat(flat)
        if not np.isfinite(flat).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data may"
                             " contain large values and need to be preprocessed.")
        return self

    def _new_optimizer(self, n_params):
        dtype = self._fit_dtype
        if self.solver == "sgd":
            return {"code": SGD, "lr": float(self.learning_rate_init),
                    "state": aligned_zeros((1, n_params), dtype), "step": np.zeros(1, np.int64)}
        return {"code": ADAM, "lr": float(self.learning_rate_init),
                "state": aligned_zeros((2, n_params), dtype), "step": np.zeros(1, np.int64)}

    def _set_lr(self, opt, lr):
        # Keep scikit-learn's velocity (-lr * u) unchanged when lr changes.
        if opt["code"] == SGD and lr != opt["lr"]:
            opt["state"] *= opt["lr"] / lr
        opt["lr"] = lr

    def _trigger_stopping(self, opt, msg):
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if opt["lr"] <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._set_lr(opt, opt["lr"] / 5.0)
        if self.verbose:
            print(msg + " Setting learning rate to %f" % opt["lr"])
        return False

    def _fit_stochastic(self, X, Y, sample_weight, flat, incremental):
        if not incremental or getattr(self, "_opt", None) is None:
            self._opt = self._new_optimizer(flat.shape[0])
        opt = self._opt
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = Y if (is_classifier(self) and self.n_outputs_ == 1) else None
            if sample_weight is None:
                X_tr, X_val, Y_tr, Y_val = train_test_split(
                    X, Y, random_state=self._random_state, test_size=self.validation_fraction,
                    stratify=stratify)
                sw_tr = sw_val = None
            else:
                X_tr, X_val, Y_tr, Y_val, sw_tr, sw_val = train_test_split(
                    X, Y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            X_tr, Y_tr = np.ascontiguousarray(X_tr), np.ascontiguousarray(Y_tr)
            y_val = (self._label_binarizer.inverse_transform(Y_val.astype(bool))
                     if is_classifier(self) else Y_val)
            if not is_classifier(self) and y_val.shape[1] == 1:
                y_val = y_val.ravel()
        else:
            X_tr, Y_tr, sw_tr = X, Y, sample_weight
            X_val = y_val = sw_val = None

        n = X_tr.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than "
                              "sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        weighted = sw_tr is not None
        sw = (np.ascontiguousarray(sw_tr, dtype=np.float64) if weighted
              else np.ones(n, dtype=np.float64))
        # read-only views: a read-only input (a memory map) then takes the same compiled epoch
        X_tr, Y_tr, sw = read_only(X_tr), read_only(Y_tr), read_only(sw)
        sizes, codes, loss_code = self._layout()
        ws = _Workspace(sizes, batch_size, flat.dtype)
        grads = aligned_empty(flat.shape[0], flat.dtype)
        sample_idx = np.arange(n, dtype=np.int64)
        nesterov = bool(self.nesterovs_momentum) and self.momentum > 0
        threaded = threaded_flag(sizes, min(batch_size, n), flat.dtype)
        uses = self._uses()
        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                if self.shuffle:
                    # sklearn.utils.shuffle draws exactly this permutation
                    perm = np.arange(n)
                    self._random_state.shuffle(perm)
                    sample_idx = sample_idx[perm]
                total = _run_epoch(X_tr, Y_tr, sw, weighted, sample_idx, batch_size, sizes, codes,
                                   loss_code, float(self.alpha), flat, grads, opt["state"],
                                   opt["code"], opt["lr"], float(self.momentum), nesterov,
                                   float(self.beta_1), float(self.beta_2), float(self.epsilon),
                                   opt["step"], ws.A, ws.Z, ws.D, ws.Y, threaded, uses)
                self.n_iter_ += 1
                self.loss_ = float(total) / n
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val, flat)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._set_lr(opt, float(self.learning_rate_init)
                                 / (self.t_ + 1) ** self.power_t)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if self._trigger_stopping(opt, msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and "
                                  "the optimization hasn't converged yet." % self.max_iter,
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            flat = self._best_flat.copy()
        return flat

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, sw_val, flat):
        if early_stopping:
            y_pred = self._decode(self._forward_flat(flat, X_val))
            if np.issubdtype(np.asarray(y_pred).dtype, np.floating) and \
                    not np.isfinite(y_pred).all():
                score = np.nan
            else:
                score = self._score_fn(y_val, y_pred, sample_weight=sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_flat = flat.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_lbfgs(self, X, Y, sample_weight, flat):
        n = X.shape[0]
        sizes, codes, loss_code = self._layout()
        weighted = sample_weight is not None
        sw = sample_weight if weighted else np.ones(n, dtype=np.float64)
        X, Y, sw = read_only(X), read_only(Y), read_only(sw)  # as _fit_stochastic's epochs
        order = np.arange(n, dtype=np.int64)
        ws = _Workspace(sizes, n, flat.dtype)
        params = np.empty_like(flat)
        grads = aligned_empty(flat.shape[0], flat.dtype)
        alpha = float(self.alpha)
        threaded = threaded_flag(sizes, n, flat.dtype)
        uses = self._uses()

        def fun(p):
            params[:] = p
            loss, _ = _batch_loss_grad(params, sizes, codes, loss_code, alpha, X, Y, sw,
                                       weighted, order, 0, n, n, ws.A, ws.Z, ws.D, ws.Y, grads,
                                       threaded, uses)
            return float(loss), grads.astype(np.float64)

        from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
        from sklearn.utils.optimize import _check_optimize_result
        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        res = scipy.optimize.minimize(
            fun, flat.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                     **_get_additional_lbfgs_options_dict("iprint", iprint)})
        self.n_iter_ = _check_optimize_result("lbfgs", res, self.max_iter)
        self.loss_ = float(res.fun)
        return np.ascontiguousarray(res.x, dtype=flat.dtype)

    # -- prediction ------------------------------------------------------------------------------
    def _forward_flat(self, flat, X):
        sizes, codes, _ = self._layout()
        X = read_only(np.ascontiguousarray(X, dtype=flat.dtype))  # one specialisation for both
        out = np.empty((X.shape[0], int(sizes[-1])), flat.dtype)
        rows = max(1, min(_PREDICT_ROWS, X.shape[0]))
        A_buf = aligned_empty(rows * int(sizes.sum()), flat.dtype)
        Z_buf = aligned_empty(rows * int(sizes[1:].sum()), flat.dtype)
        predict_network(flat, sizes, codes, X, out, A_buf, Z_buf, None, self._uses())
        return out

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = _validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                               dtype=(np.float64, np.float32))
        return self._forward_flat(self._flat_from_attributes(), _dense(X))

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data (sparse matrices are densified).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification) or real numbers (regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights: each minibatch's loss and gradient are weighted averages, as in
            scikit-learn (>= 1.7).

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        ValueError
            On invalid parameters or data, or when training produced non-finite weights.
        """
        self._validate_params()
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier, a drop-in for ``sklearn.neural_network.MLPClassifier``.

    Same parameters, defaults, attributes and training mathematics as scikit-learn's (see the
    module docstring); each epoch runs in compiled fastbp kernels.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,) or int, default=(100,)
        Width of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Hidden-layer activation.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        Weight optimizer; "lbfgs" is full-batch L-BFGS-B from SciPy on compiled gradients.
    alpha : float, default=0.0001
        L2 penalty on the weights (not the intercepts).
    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        SGD learning-rate schedule (scikit-learn's rules).
    learning_rate_init : float, default=0.001
        Initial learning rate (sgd, adam).
    power_t : float, default=0.5
        Exponent of "invscaling".
    max_iter : int, default=200
        Maximum epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Shuffle the samples each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling and the early-stopping split.
    tol : float, default=1e-4
        Improvement threshold for stopping.
    verbose : bool, default=False
        Print progress.
    warm_start : bool, default=False
        Start from the previous fit's weights.
    momentum : float, default=0.9
        SGD momentum in [0, 1].
    nesterovs_momentum : bool, default=True
        Nesterov momentum (sgd with momentum > 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` and stop when its score stalls.
    validation_fraction : float, default=0.1
        Held-out fraction for early stopping.
    beta_1 : float, default=0.9
        Adam first-moment decay.
    beta_2 : float, default=0.999
        Adam second-moment decay.
    epsilon : float, default=1e-8
        Adam numerical-stability term.
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum loss evaluations (lbfgs).
    device : str, default="cpu"
        Where to train; only "cpu" is supported by the estimators in this version.
    dtype : {"float32", "float64"} or None, default=None
        Arithmetic precision of parameters and computations. None follows X as scikit-learn
        does (float32 input trains in float32, anything else in float64), which reproduces
        scikit-learn's fit to rounding error; "float32" is faster for wide layers.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    loss_ : float
        Loss of the last epoch (mean over its minibatches, penalty included).
    best_loss_ : float or None
        Lowest training loss seen (None with early stopping).
    loss_curve_ : list of float
        Loss per epoch (stochastic solvers).
    validation_scores_ : list of float or None
        Validation accuracy per epoch (early stopping).
    best_validation_score_ : float or None
        Best validation accuracy (early stopping).
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray
        Weight matrices, ``coefs_[i]`` of shape (n_in, n_out).
    intercepts_ : list of ndarray
        Bias vectors.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when X had string column names.
    n_iter_ : int
        Epochs (or lbfgs iterations) run by the last fit.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        "softmax" (multiclass) or "logistic" (binary, multi-label).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastbp.sklearn import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.95
    True
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device="cpu", dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype

    _score_fn = staticmethod(accuracy_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                              dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _decode(self, y_pred):
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _predict(self, X, check_input=True):
        return self._decode(self._forward_pass_fast(X, check_input=check_input))

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Predicted classes (an indicator matrix for multi-label targets).
        """
        check_is_fitted(self)
        return self._predict(X)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Target labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array-like of shape (n_classes,), default=None
            All classes across calls; required on the first call (except multi-label).

        Returns
        -------
        self : object
            The updated estimator.
        """
        self._validate_params()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            Class probabilities in the order of ``classes_``.
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """Log of the probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        y_prob = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor, a drop-in for ``sklearn.neural_network.MLPRegressor``.

    Same parameters, defaults, attributes and training mathematics as scikit-learn's (half
    squared error on an identity output; see the module docstring). Multi-output targets are
    supported.

    Parameters
    ----------
    loss : {"squared_error"}, default="squared_error"
        Training loss. scikit-learn's "poisson" is not supported.
    hidden_layer_sizes : array-like of shape (n_layers - 2,) or int, default=(100,)
        Width of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Hidden-layer activation.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        Weight optimizer.
    alpha : float, default=0.0001
        L2 penalty on the weights.
    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        SGD learning-rate schedule.
    learning_rate_init : float, default=0.001
        Initial learning rate.
    power_t : float, default=0.5
        Exponent of "invscaling".
    max_iter : int, default=200
        Maximum epochs (or lbfgs iterations).
    shuffle : bool, default=True
        Shuffle the samples each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling and the early-stopping split.
    tol : float, default=1e-4
        Improvement threshold for stopping.
    verbose : bool, default=False
        Print progress.
    warm_start : bool, default=False
        Start from the previous fit's weights.
    momentum : float, default=0.9
        SGD momentum.
    nesterovs_momentum : bool, default=True
        Nesterov momentum.
    early_stopping : bool, default=False
        Stop when the held-out R^2 stalls.
    validation_fraction : float, default=0.1
        Held-out fraction for early stopping.
    beta_1 : float, default=0.9
        Adam first-moment decay.
    beta_2 : float, default=0.999
        Adam second-moment decay.
    epsilon : float, default=1e-8
        Adam numerical-stability term.
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum loss evaluations (lbfgs).
    device : str, default="cpu"
        Where to train; only "cpu" is supported by the estimators in this version.
    dtype : {"float32", "float64"} or None, default=None
        Arithmetic precision; None follows X (float32 stays float32, the rest float64).

    Attributes
    ----------
    loss_ : float
        Loss of the last epoch.
    best_loss_ : float or None
        Lowest training loss seen.
    loss_curve_ : list of float
        Loss per epoch.
    validation_scores_ : list of float or None
        Validation R^2 per epoch (early stopping).
    best_validation_score_ : float or None
        Best validation R^2.
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray
        Weight matrices.
    intercepts_ : list of ndarray
        Bias vectors.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when X had string column names.
    n_iter_ : int
        Epochs run by the last fit.
    n_layers_ : int
        Number of layers.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        "identity".

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = MLPRegressor((32,), solver="lbfgs", random_state=0).fit(X, X.ravel() ** 2)
    >>> reg.score(X, X.ravel() ** 2) > 0.9
    True
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "loss": [StrOptions({"squared_error"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device="cpu", dtype=None):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype

    _score_fn = staticmethod(r2_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                              y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _decode(self, y_pred):
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    def _predict(self, X, check_input=True):
        return self._decode(self._forward_pass_fast(X, check_input=check_input))

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    def predict(self, X):
        """Predict with the fitted network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predicted values.
        """
        check_is_fitted(self)
        return self._predict(X)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The updated estimator.
        """
        self._validate_params()
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

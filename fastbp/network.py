"""The Network class: layer layout, parameters, inference and gradients (no arithmetic loops)."""
import threading

import numpy as np

from .kernels.activations import (ACTIVATION_CODES, ACTIVATIONS, LOSS_CODES, LOSS_OUTPUTS,
                                  OUTPUT_ACTIVATIONS)
from ._validation import as_array, as_matrix, as_targets, check_choice, check_int
from ._devices import make_engine, parse_device

DTYPES = ("float32", "float64")
_HE_INIT = ("relu", "leaky_relu", "elu", "gelu")  # the ReLU family: He; everything else Glorot
_DEFAULT_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}


class Network:
    """A fully connected network trained by backpropagation with compiled kernels.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths from input to output, e.g. ``[64, 128, 10]`` (at least two, each >= 1).
    activation : str or sequence of str
        Hidden activation, one name or one per hidden layer: identity, sigmoid, tanh, relu,
        leaky_relu, elu, softplus, gelu.
    output : str
        Output activation: any hidden activation or softmax.
    loss : str or None
        "cross_entropy" (softmax output), "binary_cross_entropy" (sigmoid output) or "mse"
        (any output). None picks the natural loss of ``output`` (mse for the rest).
    dtype : str
        "float32" or "float64".
    device : str
        "cpu", "cuda" or "cuda:N".
    seed : int or None
        Seeds initialization and shuffling; the same seed and data give identical weights.

    Examples
    --------
    >>> net = Network([64, 128, 10], activation="relu", output="softmax", seed=0)
    >>> net.n_params
    9610
    """

    def __init__(self, layer_sizes, activation="relu", output="softmax", loss=None,
                 dtype="float32", device="cpu", seed=None):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError(f"layer_sizes must be a sequence of ints; got {layer_sizes!r}")
        if len(layer_sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output size; "
                             f"got {list(layer_sizes)!r}")
        self.layer_sizes = [check_int(f"layer_sizes[{i}]", s, 1) for i, s in enumerate(layer_sizes)]
        n_hidden = len(self.layer_sizes) - 2
        if isinstance(activation, str):
            activation = [activation] * n_hidden
        activation = list(activation)
        if len(activation) != n_hidden:
            raise ValueError(f"activation must be one name or one per hidden layer "
                             f"({n_hidden}); got {len(activation)} names")
        self.activations = [check_choice("activation", a, ACTIVATIONS) for a in activation]
        self.output = check_choice("output", output, OUTPUT_ACTIVATIONS)
        if loss is None:
            loss = _DEFAULT_LOSS.get(self.output, "mse")
        self.loss_name = check_choice("loss", loss, LOSS_CODES)
        if self.output not in LOSS_OUTPUTS[self.loss_name]:
            raise ValueError(f"loss={self.loss_name!r} does not fit output={self.output!r}: "
                             f"it needs output in {list(LOSS_OUTPUTS[self.loss_name])}")
        self.dtype = np.dtype(check_choice("dtype", str(np.dtype(dtype)) if _is_dtype(dtype)
                                           else dtype, DTYPES))
        self.device = parse_device(device)
        if seed is not None:
            seed = check_int("seed", seed, 0)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._engine = self._new_engine()
        self._engine.set_params(self._initial_params())
        # Training state carried between fit calls and into checkpoints.
        self.optimizer = None
        self._opt_state = None
        self._opt_step = np.zeros(1, dtype=np.int64)
        self.epochs_done = 0
        self._partial_epoch = None  # set by an interrupted fit: where resume=True picks up
        self._lock = threading.RLock()

    def _new_engine(self):
        codes = [ACTIVATION_CODES[a] for a in self.activations] + [ACTIVATION_CODES[self.output]]
        return make_engine(self.device, self.layer_sizes, codes, LOSS_CODES[self.loss_name],
                           self.dtype)

    # -- pickle and copy.deepcopy ---------------------------------------------------------------
    # The engine (compiled-code workspaces, or GPU memory) and the lock cannot be pickled: the
    # state carries host copies of the parameters and the optimizer state instead, and
    # unpickling builds a fresh engine on the same device. Everything else (optimizer and its
    # schedule, step count, epochs done, shuffling RNG, an interrupted fit's resume point)
    # travels as it is, so a copy trains on exactly as the original would.
    def __getstate__(self):
        with self._lock:
            state = {k: v for k, v in self.__dict__.items()
                     if k not in ("_engine", "_lock", "_opt_state")}
            state["_params"] = self._engine.get_params()
            state["_opt_state_host"] = None
            if self._opt_state is not None:
                host = np.empty((self._opt_state.shape[0], self.n_params), dtype=self.dtype)
                self._engine.state_to_host(self._opt_state, host)
                state["_opt_state_host"] = host
        return state

    def __setstate__(self, state):
        state = dict(state)
        params = state.pop("_params")
        opt_host = state.pop("_opt_state_host")
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._engine = self._new_engine()
        self._engine.set_params(params)
        self._opt_state = None
        if opt_host is not None:
            self._opt_state = self._engine.new_state(opt_host.shape[0])
            self._engine.state_from_host(self._opt_state, opt_host)

    # -- layout ---------------------------------------------------------------------------------
    @property
    def n_layers(self):
        """Number of weight layers."""
        return len(self.layer_sizes) - 1

    @property
    def n_params(self):
        return self._engine.n_params

    def _slices(self):
        """(weight slice, shape), (bias slice) of each layer in the flat parameter vector."""
        out, w, b = [], 0, self._engine.n_weights
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            out.append((slice(w, w + n_in * n_out), (n_in, n_out), slice(b, b + n_out)))
            w += n_in * n_out
            b += n_out
        return out

    def _initial_params(self):
        flat = np.zeros(self.n_params, dtype=np.float64)
        acts = self.activations + [self.output]
        for (ws, shape, _), act in zip(self._slices(), acts):
            n_in, n_out = shape
            if act in _HE_INIT:
                flat[ws] = self._rng.normal(0.0, np.sqrt(2.0 / n_in), n_in * n_out)
            else:
                limit = np.sqrt(6.0 / (n_in + n_out))
                flat[ws] = self._rng.uniform(-limit, limit, n_in * n_out)
        return flat.astype(self.dtype)

    # -- parameters -----------------------------------------------------------------------------
    @property
    def weights(self):
        """Copies of the weight matrices, each (n_in, n_out), as host NumPy arrays."""
        flat = self._engine.get_params()
        return [flat[ws].reshape(shape) for ws, shape, _ in self._slices()]

    @property
    def biases(self):
        """Copies of the bias vectors, each (n_out,), as host NumPy arrays."""
        flat = self._engine.get_params()
        return [flat[bs].copy() for _, _, bs in self._slices()]

    def get_flat_parameters(self):
        """All parameters as one vector: every W (row-major) in order, then every b."""
        return self._engine.get_params()

    def set_parameters(self, weights, biases):
        """Copy in parameters (NumPy, lists, or device arrays with ``copy_to_host``).

        Parameters
        ----------
        weights : sequence of array_like
            One (n_in, n_out) matrix per layer.
        biases : sequence of array_like
            One (n_out,) vector per layer.
        """
        for name, seq in (("weights", weights), ("biases", biases)):
            if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
                raise TypeError(f"{name} must be a sequence of {self.n_layers} arrays (one per "
                                f"layer); got {type(seq).__name__}")
        weights, biases = list(weights), list(biases)
        if len(weights) != self.n_layers or len(biases) != self.n_layers:
            raise ValueError(f"weights and biases must each hold {self.n_layers} arrays; got "
                             f"{len(weights)} and {len(biases)}")
        flat = np.empty(self.n_params, dtype=self.dtype)
        for l, ((ws, shape, bs), W, b) in enumerate(zip(self._slices(), weights, biases)):
            W = as_array(f"weights[{l}]", None if W is None else _host(W), shape, self.dtype)
            b = as_array(f"biases[{l}]", None if b is None else _host(b), (shape[1],),
                         self.dtype)
            flat[ws] = W.reshape(-1)
            flat[bs] = b
        with self._lock:
            self._engine.set_params(flat)

    # -- inference ------------------------------------------------------------------------------
    def _X(self, X, name="X"):
        return as_matrix(name, X, self.dtype, self.layer_sizes[0])

    def _Y(self, y, n, name="y"):
        return as_targets(name, y, self.loss_name, self.layer_sizes[-1], n, self.dtype)

    def forward(self, X):
        """Output activations ``A_L`` of shape (n, n_outputs).

        Parameters
        ----------
        X : array_like (n, n_inputs)
            Inputs.

        Returns
        -------
        ndarray (n, n_outputs)
        """
        return self._engine.forward(self._X(X))

    def predict_proba(self, X):
        """Class probabilities: the softmax (or sigmoid) outputs, (n, n_outputs).

        Parameters
        ----------
        X : array_like (n, n_inputs)
            Inputs.

        Returns
        -------
        ndarray (n, n_outputs)

        Raises
        ------
        ValueError
            For a network trained with mse.
        """
        if self.loss_name == "mse":
            raise ValueError("predict_proba needs a classification loss (cross_entropy or "
                             "binary_cross_entropy); this network uses mse: call predict")
        return self.forward(X)

    def predict(self, X):
        """Class labels (cross_entropy: argmax; binary_cross_entropy: outputs > 0.5 as 0/1)
        or regression outputs (mse: (n,) for one output, else (n, n_outputs)).

        Parameters
        ----------
        X : array_like (n, n_inputs)
            Inputs.

        Returns
        -------
        ndarray
            Labels (n,) or (n, K) for multi-label, or regression outputs.
        """
        A = self.forward(X)
        if self.loss_name == "cross_entropy":
            return A.argmax(axis=1)
        if self.loss_name == "binary_cross_entropy":
            labels = (A > 0.5).astype(np.int64)
            return labels[:, 0] if labels.shape[1] == 1 else labels
        return A[:, 0] if A.shape[1] == 1 else A

    def loss(self, X, y):
        """Mean loss over the samples (see the README for each loss's averaging).

        Parameters
        ----------
        X : array_like (n, n_inputs)
            Inputs.
        y : array_like
            Targets, as for fit.

        Returns
        -------
        float
        """
        X = self._X(X)
        return float(self._engine.loss_and_gradients(X, self._Y(y, X.shape[0]), False)[0])

    def accuracy(self, X, y):
        """Fraction of correctly predicted labels (classification losses only).

        Parameters
        ----------
        X : array_like (n, n_inputs)
            Inputs.
        y : array_like
            Labels or one-hot targets.

        Returns
        -------
        float
        """
        if self.loss_name == "mse":
            raise ValueError("accuracy needs a classification loss (cross_entropy or "
                             "binary_cross_entropy); this network uses mse: compare "
                             "predict(X) with y instead")
        X = self._X(X)
        return _accuracy(self.loss_name, self._engine.forward(X), self._Y(y, X.shape[0]))

    def gradients(self, X, y):
        """Gradients of the mean loss over (X, y), parameters untouched.

        Parameters
        ----------
        X : array_like (n, n_inputs)
            Inputs.
        y : array_like
            Targets, as for fit.

        Returns
        -------
        dWs, dbs : list of ndarray
            One (n_in, n_out) and one (n_out,) array per layer.
        """
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        _, g = self._engine.loss_and_gradients(X, Y)
        g = np.asarray(g)
        return ([g[ws].reshape(shape) for ws, shape, _ in self._slices()],
                [g[bs].copy() for _, _, bs in self._slices()])

    # -- training, persistence ------------------------------------------------------------------
    def fit(self, X, y, epochs=10, batch_size=32, optimizer="sgd", shuffle=True,
            validation_data=None, progress=False, callbacks=None, early_stopping=None,
            checkpoint=None, checkpoint_every=1, resume=False, on_divergence="raise"):
        """Train by minibatch backpropagation; see ``fastbp.training.fit`` for every argument.

        Parameters
        ----------
        X : array_like (n, n_inputs)
            Inputs.
        y : array_like
            Targets: labels (n,) or one-hot (n, K) for cross_entropy, 0/1 for binary_cross_entropy,
            floats for mse.
        epochs : int
            Epochs to run.
        batch_size : int
            Rows per minibatch.
        optimizer : str or Optimizer
            "sgd", "adam" or an instance; the same instance continues its state.
        shuffle : bool
            Shuffle every epoch.
        validation_data : tuple or None
            ``(X_val, y_val)``.
        progress : bool
            Progress bar on stderr.
        callbacks : list or None
            Callbacks or callables ``f(net, record)``.
        early_stopping : EarlyStopping, int or None
            Early stopping (an int is the patience).
        checkpoint : str, path or None
            Checkpoint file.
        checkpoint_every : int
            Epochs between checkpoints.
        resume : bool
            Continue from the network's training state.
        on_divergence : {"raise", "stop"}
            What to do when the loss becomes NaN/Inf.

        Returns
        -------
        History
        """
        from .training import fit
        return fit(self, X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   shuffle=shuffle, validation_data=validation_data, progress=progress,
                   callbacks=callbacks, early_stopping=early_stopping, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, resume=resume, on_divergence=on_divergence)

    def save(self, path, include_optimizer=True):
        """Write the network (and its optimizer state) to an .npz file, atomically.

        Parameters
        ----------
        path : str or path
            The .npz file to write.
        include_optimizer : bool
            Also store the optimizer and its state (to resume training).
        """
        from .io import save
        save(self, path, include_optimizer=include_optimizer)

    def to(self, device):
        """A copy of this network on another device (parameters and training state).

        Parameters
        ----------
        device : str
            "cpu", "cuda" or "cuda:N".

        Returns
        -------
        Network
        """
        from .io import network_from_state, network_state
        return network_from_state(network_state(self), device=device)

    def __repr__(self):
        return (f"Network({self.layer_sizes}, activation={self.activations}, "
                f"output={self.output!r}, loss={self.loss_name!r}, dtype={self.dtype.name!r}, "
                f"device={self.device!r})")


def _is_dtype(d):
    if d is None:
        return False
    try:
        np.dtype(d)
        return not isinstance(d, str) or d in DTYPES
    except TypeError:
        return False


def _host(a):
    if hasattr(a, "copy_to_host"):
        a = a.copy_to_host()
    elif hasattr(a, "get") and not isinstance(a, (dict, np.ndarray)):
        a = a.get()
    elif hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _accuracy(loss_name, A, Y):
    if loss_name == "cross_entropy":
        return float((A.argmax(1) == Y.argmax(1)).mean())
    if loss_name == "binary_cross_entropy":
        return float(((A > 0.5) == (Y > 0.5)).mean())
    return None

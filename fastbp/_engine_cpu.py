"""CPU engine: owns the flat parameter vector and the workspaces, calls the compiled drivers.

The CUDA engine (fastbp._engine_cuda) exposes the same methods, so Network never branches on
the device. Everything crossing this interface is a host NumPy array.
"""
import numpy as np

from .kernels.cpu import network as K
from . import _compile_helper
from ._validation import finite, read_only
from .kernels.cpu.uses import Uses
from ._aligned import aligned_empty, aligned_zeros, driver_workspaces
from ._denormals import call_flushing
from ._threading import products_may_thread, threaded_flag

# The workspace views from Python: the kernels' own functions run as plain Python (NumPy
# slicing), so the layout has one definition and nothing is compiled for them (about 0.4 s
# of a cold fit with validation data when they were called compiled).
_act_view = K.act_view.py_func
_z_view = K.z_view.py_func


class CPUEngine:
    device = "cpu"
    #: run_batches can check each update before writing it (train_batches ``checked``)
    can_check_updates = True

    def __init__(self, sizes, codes, loss_code, dtype):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.codes = np.asarray(codes, dtype=np.int64)
        self.loss_code = int(loss_code)
        self.dtype = np.dtype(dtype)
        # in NumPy: the compiled K.n_weights would be one more function to compile at start-up
        self.n_weights = int(np.dot(self.sizes[:-1], self.sizes[1:]))
        self.n_params = self.n_weights + int(self.sizes[1:].sum())
        self.params = aligned_zeros(self.n_params, self.dtype)
        # what the compiled drivers need to compile (kernels/cpu/uses.py): this network's
        # activations and loss, and for training its optimizer
        self._uses = Uses.for_network(self.codes, self.loss_code)
        self._fit_uses = {}
        self._ws = {}
        self._grads = None
        self._fit_threaded = None  # the threaded flag of the last fit (see _threaded)
        self._fitted = False

    # -- parameters ---------------------------------------------------------------------------
    def get_params(self):
        return self.params.copy()

    def set_params(self, flat):
        self.params[:] = flat

    def all_finite(self, state):
        """True when the parameters and the optimizer state hold no NaN or Inf."""
        # the parameters as one row: where the compiled scan runs (large arrays), the same
        # 2-D specialisation as the state's and fit's input check
        return (finite(self.params.reshape(1, -1))
                and (state.shape[0] == 0 or finite(state)))

    def params_to_host(self, out):
        out[:] = self.params

    def new_state(self, rows):
        """Optimizer state (rows, n_params), zeros, in this engine's memory."""
        return aligned_zeros((rows, self.n_params), self.dtype)

    def state_to_host(self, state, out):
        out[:] = state

    def state_from_host(self, state, host):
        state[:] = host

    # -- workspaces -----------------------------------------------------------------------------
    def _workspace(self, rows):
        ws = self._ws.get(rows)
        if ws is None:
            ws = driver_workspaces(self.sizes, rows, self.dtype)
            self._ws = {rows: ws}  # keep one size only: memory stays bounded
        return ws

    # -- threads ------------------------------------------------------------------------------
    def _threaded(self, rows):
        """The drivers' ``threaded`` argument for products of ``rows`` rows
        (``_threading.threaded_flag``: True, ``THREADED_NO_STREAM``, or None, whose compiled
        specialisation holds no threaded code, a third less cold compile). After a fit,
        evaluation passes the fit's flag, so it runs the specialisation training compiled
        instead of compiling the other one; threads are re-checked on every call (a forked
        child, a changed thread count)."""
        if not products_may_thread():
            return None
        if self._fitted:
            return self._fit_threaded
        return threaded_flag(self.sizes, rows, self.dtype)

    # -- inference and gradients ----------------------------------------------------------------
    def forward(self, X, rows=4096):
        out = np.empty((X.shape[0], int(self.sizes[-1])), self.dtype)
        rows = min(rows, X.shape[0])
        A_buf, Z_buf, _, _ = self._workspace(rows)
        threaded = self._threaded(rows)
        call_flushing(self._forward_blocks, X, out, rows, A_buf, Z_buf, threaded,
                      threads=bool(threaded))
        return out

    def _forward_blocks(self, X, out, rows, A_buf, Z_buf, threaded):
        """``out`` = the output activations of X, ``rows`` rows at a time, through
        ``forward_network``: the compiled forward pass that ``evaluate`` (a fit's validation)
        and ``loss_and_gradients`` use too. ``predict_network`` gives the same bits, but it
        is a second compile of the whole forward pass (1.4 s of the CLI's cold start)."""
        L = len(self.sizes) - 1
        for r0 in range(0, X.shape[0], rows):
            m = min(rows, X.shape[0] - r0)
            _act_view(A_buf, self.sizes, rows, 0, m)[:] = X[r0:r0 + m]
            K.forward_network(self.params, self.sizes, self.codes, m, rows, A_buf, Z_buf,
                              threaded, self._uses)
            out[r0:r0 + m] = _act_view(A_buf, self.sizes, rows, L, m)

    def loss_and_gradients(self, X, Y, with_grads=True):
        """Mean loss over all rows and (optionally) its gradient, as one batch."""
        threaded = self._threaded(X.shape[0])
        return call_flushing(self._loss_and_gradients, X, Y, with_grads, threaded,
                             threads=bool(threaded))

    def _loss_and_gradients(self, X, Y, with_grads, threaded):
        n = X.shape[0]
        if not Y.flags.writeable:  # the type of the driver's target rows (writable), so a
            Y = Y.copy()  # validation pass reuses its compiled loss: one specialisation
        A_buf, Z_buf, D_buf, _ = self._workspace(n)
        L = len(self.sizes) - 1
        _act_view(A_buf, self.sizes, n, 0, n)[:] = X
        K.forward_network(self.params, self.sizes, self.codes, n, n, A_buf, Z_buf, threaded,
                          self._uses)
        # batch_loss_sum, as the training driver: one compiled loss for fit and evaluation
        loss = K.batch_loss_sum(_z_view(Z_buf, self.sizes, n, L, n),
                                _act_view(A_buf, self.sizes, n, L, n), Y, self.codes[-1],
                                self.loss_code, self._uses) / n
        if not with_grads:
            return loss, None
        grads = np.empty(self.n_params, self.dtype)
        K.backward_network(self.params, self.sizes, self.codes, self.loss_code, Y, n, n,
                           A_buf, Z_buf, D_buf, grads, threaded, self._uses)
        return loss, grads

    def evaluate(self, X, Y):
        """Mean loss and output activations (n, K) of (X, Y), from one forward pass."""
        n = X.shape[0]
        loss, _ = self.loss_and_gradients(X, Y, False)
        A_buf = self._workspace(n)[0]  # the buffers that forward pass just filled
        return loss, _act_view(A_buf, self.sizes, n, len(self.sizes) - 1, n).copy()

    # -- training -------------------------------------------------------------------------------
    def begin_fit(self, X, Y, batch_size, checked=False):
        """Hold the data for run_batches. ``checked``: refuse (status 2) any update that would
        make a parameter or optimizer-state entry non-finite, before writing it."""
        self._X, self._Y = read_only(X), read_only(Y)  # one driver for either kind
        self._checked = True if checked else None  # None: the check is not even compiled
        self._batch = batch_size
        self._fit_ws = self._workspace(min(batch_size, X.shape[0]))
        if self._grads is None:
            self._grads = aligned_empty(self.n_params, self.dtype)
        self._fit_threaded = threaded_flag(self.sizes, min(batch_size, X.shape[0]), self.dtype)
        self._fitted = True

    def end_fit(self):
        self._X = self._Y = None

    def run_batches(self, order, first, last, opt_code, hyper, state, step):
        """Batches [first, last) of the epoch given by ``order``; see train_batches."""
        A_buf, Z_buf, D_buf, Y_buf = self._fit_ws
        # re-checked per call: another thread may have changed the thread count since begin_fit
        # (a net that never threads skips the check: None either way)
        threaded = self._fit_threaded
        if threaded is not None and not products_may_thread():
            threaded = None
        uses = self._fit_uses.get(opt_code)
        first_call = uses is None
        if first_call:
            uses = self._fit_uses[opt_code] = Uses.for_network(self.codes, self.loss_code, opt_code)
        args = (self._X, self._Y, order, self._batch, first, last, self.sizes, self.codes,
                self.loss_code, self.params, self._grads, state, opt_code, hyper, step, A_buf,
                Z_buf, D_buf, Y_buf, threaded, self._checked, uses)
        # this engine's first fit with this optimizer: if the driver still has to be compiled,
        # a second process compiles its backward pass meanwhile, and this one the update first
        helper = _compile_helper.maybe_start(
            K.train_batches, args, first_call,
            lambda: _compile_helper.spec(self, Y_buf.shape[0], opt_code, state.shape[0],
                                         threaded, self._checked))
        try:
            if helper is not None:
                _compile_helper.compile_update(self.params, self._grads, state, opt_code,
                                               hyper, step, self.n_weights, threaded, uses,
                                               self._checked, self.sizes, Y_buf.shape[0],
                                               A_buf, Z_buf, D_buf)
            return call_flushing(K.train_batches, *args, threads=bool(threaded))
        finally:
            _compile_helper.stop(helper)

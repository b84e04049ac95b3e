"""CUDA engine: the CPUEngine interface with the parameters, optimizer state, dataset and
workspaces in GPU memory (numba.cuda). Everything crossing the interface is a host NumPy array
except ``params`` and the optimizer state, which stay on the device.

Per training chunk, only the epoch's sample order goes host->device (once per epoch) and a
3-number ``info`` array [loss sum, status, batches ran] comes back.
"""
import numpy as np
from numba import cuda

from .kernels.activations import ADAM
from .kernels.cuda import config
from .kernels.cuda import fused as F
from .kernels.cuda import network as K
from .kernels.cuda._checks import as_device

_PREDICT_ROWS = 4096


@cuda.jit
def _zero3(info):
    if cuda.grid(1) == 0:
        info[0] = 0.0
        info[1] = 0.0
        info[2] = 0.0


class CUDAEngine:
    #: updates are not checked before writing: fit keeps a host snapshot instead
    can_check_updates = False

    def __init__(self, sizes, codes, loss_code, dtype, device_index=0):
        n_gpus = len(cuda.gpus)
        if not 0 <= device_index < n_gpus:
            raise ValueError(f"device 'cuda:{device_index}' does not exist: {n_gpus} CUDA "
                             f"device(s) visible")
        if device_index != 0:
            cuda.select_device(device_index)  # one device per process/thread: see docs/gpu.md
        self.device = f"cuda:{device_index}"
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.codes = np.asarray(codes, dtype=np.int64)
        self.loss_code = int(loss_code)
        self.dtype = np.dtype(dtype)
        self.n_weights = K.n_weights(self.sizes)
        self.n_params = self.n_weights + int(self.sizes[1:].sum())
        self.params = cuda.to_device(np.zeros(self.n_params, dtype=self.dtype))
        self._grads = cuda.device_array(self.n_params, self.dtype)
        self._info = cuda.device_array(3, np.float64)
        self._ws = {}
        self._sizes_d = cuda.to_device(self.sizes)
        self._codes_d = cuda.to_device(self.codes)

    # -- parameters ---------------------------------------------------------------------------
    def get_params(self):
        return self.params.copy_to_host()

    def set_params(self, flat):
        self.params.copy_to_device(np.ascontiguousarray(flat, dtype=self.dtype))

    def all_finite(self, state):
        """True when the parameters and the optimizer state hold no NaN or Inf (host check)."""
        if not np.isfinite(self.params.copy_to_host()).all():
            return False
        return state.shape[0] == 0 or bool(np.isfinite(state.copy_to_host()).all())

    def params_to_host(self, out):
        if out.dtype == self.dtype and out.flags.c_contiguous and out.shape == self.params.shape:
            self.params.copy_to_host(out)  # straight into the caller's buffer
        else:
            out[:] = self.params.copy_to_host()

    def new_state(self, rows):
        """Optimizer state (rows, n_params), zeros, in device memory."""
        return cuda.to_device(np.zeros((rows, self.n_params), dtype=self.dtype))

    def state_to_host(self, state, out):
        if state.shape[0]:
            out[:] = state.copy_to_host()

    def state_from_host(self, state, host):
        if state.shape[0]:
            state.copy_to_device(np.ascontiguousarray(host, dtype=self.dtype))

    # -- workspaces -----------------------------------------------------------------------------
    def _workspace(self, rows):
        ws = self._ws.get(rows)
        if ws is None:
            ws = K.Workspace(self.sizes, rows, self.dtype)
            self._ws = {rows: ws}  # keep one size only: memory stays bounded
        return ws

    def _views(self):
        return K.param_views(self.params, self.sizes)

    # -- inference and gradients ----------------------------------------------------------------
    def forward(self, X, rows=_PREDICT_ROWS):
        n = X.shape[0]
        out = np.empty((n, int(self.sizes[-1])), self.dtype)
        if n == 0:
            return out
        rows = min(rows, n)
        ws = self._workspace(rows)
        Ws, bs = self._views()
        for r0 in range(0, n, rows):
            m = min(n, r0 + rows) - r0
            ws.A[0][:m].copy_to_device(np.ascontiguousarray(X[r0:r0 + m], dtype=self.dtype))
            K.forward_network(Ws, bs, self.codes, m, ws)
            out[r0:r0 + m] = ws.A[-1][:m].copy_to_host()
        return out

    def loss_and_gradients(self, X, Y, with_grads=True):
        """Mean loss over all rows and (optionally) its gradient, as one batch."""
        n = X.shape[0]
        ws = self._workspace(max(n, 1))
        ws.A[0][:n].copy_to_device(np.ascontiguousarray(X, dtype=self.dtype))
        ws.Y[:n].copy_to_device(np.ascontiguousarray(Y, dtype=self.dtype))
        Ws, bs = self._views()
        K.forward_network(Ws, bs, self.codes, n, ws)
        _zero3[1, 1](self._info)
        K.batch_loss(self.codes, self.loss_code, ws.Y, n, ws, self._info, 0)
        info = self._info.copy_to_host()
        loss = info[0] / n if info[1] == 0 else float("nan")
        if not with_grads:
            return loss, None
        gWs, gbs = K.param_views(self._grads, self.sizes)
        K.backward_network(Ws, self.codes, self.loss_code, ws.Y, n, ws, gWs, gbs)
        return loss, self._grads.copy_to_host()

    def evaluate(self, X, Y):
        """Mean loss and output activations (n, K) of (X, Y), from one forward pass."""
        n = X.shape[0]
        loss, _ = self.loss_and_gradients(X, Y, False)
        return loss, self._workspace(max(n, 1)).A[-1][:n].copy_to_host()

    # -- training -------------------------------------------------------------------------------
    def begin_fit(self, X, Y, batch_size, checked=False):
        """Copy the dataset to the device once (device arrays with __cuda_array_interface__
        of this dtype and C order are used in place). ``checked`` must be False
        (``can_check_updates``)."""
        if checked:
            raise ValueError("checked: the CUDA engine does not check updates")
        self._X = _on_device(X, self.dtype)
        self._Y = _on_device(Y, self.dtype)
        n = self._X.shape[0]
        self._batch = int(batch_size)
        rows = max(1, min(self._batch, n))
        self._fit_ws = self._workspace(rows)
        self._order = cuda.device_array(max(n, 1), np.int64)[:n]
        self._order_src = None
        self._fused = F.fits(self.sizes, rows)

    def end_fit(self):
        self._X = self._Y = self._order = self._order_src = None

    def run_batches(self, order, first, last, opt_code, hyper, state, step):
        """Batches [first, last) of the epoch given by ``order``; see
        kernels.cpu.network.train_batches. ``order`` is uploaded when it is a new epoch's."""
        if first == 0 or order is not self._order_src:
            self._order.copy_to_device(np.ascontiguousarray(order, dtype=np.int64))
            self._order_src = order
        _zero3[1, 1](self._info)
        hyper = np.asarray(hyper, dtype=np.float64)
        step0 = int(step[0])
        if self._fused:
            F.train_batches(self._X, self._Y, self._order, self._batch, first, last,
                            self._sizes_d, self._codes_d, self.sizes, self.loss_code,
                            self.params, self._grads, state, opt_code, hyper, step0,
                            self._fit_ws, self._info)
        else:
            K.train_batches(self._X, self._Y, self._order, self._batch, first, last,
                            self.sizes, self.codes, self.loss_code, self.params, self._grads,
                            state, opt_code, hyper, step0, self._fit_ws, self._info)
        loss, status, ran = self._info.copy_to_host()
        ran = int(ran)
        if opt_code == ADAM:
            step[0] += ran
        return float(loss), ran, int(status)


def _on_device(a, dtype):
    dev = as_device(a)
    if dev is not None and dev.dtype == dtype and dev.is_c_contiguous():
        return dev
    if dev is not None:
        a = dev.copy_to_host()
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))

"""Forward kernel: ``Z = A_prev @ W + b``, ``A = f(Z)``, bias and activation in the GEMM's
epilogue (one launch; softmax adds one row-wise launch)."""
from ..activations import SOFTMAX
from . import config, gemm
from ._checks import check_same, check_shape, require
from .rows import softmax_rows_kernel


def forward_rows(A_prev, W, b, code, m, Z, A):
    """Launch on the first m rows (workspace views may hold more); no checks."""
    n_in, n_out = W.shape
    gemm.launch(False, False, gemm.EPI_BIAS_ACT, A_prev, W, b, Z, A, code, m, n_out, n_in, Z, A)
    if code == SOFTMAX and m > 0:
        blocks, tpb = config.grid_1d(m)
        softmax_rows_kernel[blocks, tpb](Z, A, m)


def forward(A_prev, W, b, code, Z, A):
    """One layer forward on device arrays, the contract of ``kernels.cpu.forward``.

    A_prev (n, n_in), W (n_in, n_out), b (n_out,), Z and A (n, n_out): one float dtype,
    C-contiguous device arrays. Overwrites Z and A; allocates nothing.
    """
    A_prev, W, b, Z, A = check_same("forward", A_prev=A_prev, W=W, b=b, Z=Z, A=A)
    require(A_prev.ndim == 2 and W.ndim == 2, "forward: A_prev and W must be 2-D")
    n, (n_in, n_out) = A_prev.shape[0], W.shape
    check_shape("forward", "A_prev", A_prev, (n, n_in))
    check_shape("forward", "b", b, (n_out,))
    check_shape("forward", "Z", Z, (n, n_out))
    check_shape("forward", "A", A, (n, n_out))
    forward_rows(A_prev, W, b, int(code), n, Z, A)

"""Forward kernel: affine transform with bias and activation fused."""
from numba import njit

from .activation import bias_activation
from .gemm import matmul


@njit(cache=True, error_model="numpy", inline='always')  # into the drivers: network.py
def forward(A_prev, W, b, code, Z, A, threaded=None, uses=None):
    """One layer forward: ``Z = A_prev @ W + b``, ``A = f(Z)``.

    A_prev (n, n_in), W (n_in, n_out), b (n_out,), Z and A (n, n_out): one float dtype,
    C-contiguous, Z and A not overlapping A_prev or W. ``code`` is an activation code from
    ``kernels.activations`` (softmax is row-wise). Overwrites Z and A; allocates nothing.
    The product is ``gemm.matmul``: own register-tiled code for small products, BLAS for
    large ones (BLAS then owns the threads).

    Parameters
    ----------
    A_prev : ndarray (n, n_in)
        Activations of the layer below (the inputs for the first layer).
    W : ndarray (n_in, n_out)
        Weights.
    b : ndarray (n_out,)
        Bias.
    code : int
        Activation code from ``fastbp.kernels.activations``.
    Z : ndarray (n, n_out)
        Output: pre-activations ``A_prev @ W + b``.
    A : ndarray (n, n_out)
        Output: activations ``f(Z)``.
    threaded : bool or None
        Let a large product, and a large transcendental activation pass, use Numba's
        threads (see ``gemm.matmul`` and ``bias_activation``; None, the default, compiles
        no threaded code).
    uses : Uses or None
        As for ``bias_activation``.
    """
    if Z.shape[0] == 0:
        return
    matmul(A_prev, W, Z, threaded)
    bias_activation(Z, b, code, A, uses, threaded)

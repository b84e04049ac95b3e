"""fastbp.kernels: the compiled backpropagation kernels, usable on their own.

Imports nothing from ``fastbp``. The CPU kernels are re-exported here; the CUDA twins live in
``fastbp.kernels.cuda`` (imported on demand, so a machine without CUDA never pays for it).

    from fastbp.kernels import forward, output_delta, hidden_delta, weight_gradients, sgd_update
    from fastbp.kernels.activations import RELU, SOFTMAX, CROSS_ENTROPY
"""
from ._cache import drop_stale_cache

drop_stale_cache()  # before any cached kernel loads

from . import activations  # noqa: E402
from .activations import ACTIVATION_CODES, LOSS_CODES  # noqa: E402
from .cpu import *  # noqa: F401,F403,E402
from .cpu import __all__ as _cpu_all  # noqa: E402

__all__ = ["activations", "ACTIVATION_CODES", "LOSS_CODES", *_cpu_all]

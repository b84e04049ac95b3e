"""fastbp.kernels: the compiled backpropagation kernels, usable on their own.

Imports nothing from ``fastbp``. The CPU kernels are re-exported here; the CUDA twins live in
``fastbp.kernels.cuda`` (imported on demand, so a machine without CUDA never pays for it).

    from fastbp.kernels import forward, output_delta, hidden_delta, weight_gradients, sgd_update
    from fastbp.kernels.activations import RELU, SOFTMAX, CROSS_ENTROPY
"""
import os as _os

# In a source checkout this folder is also importable as plain ``kernels``. Loaded under two
# names, the same files would share Numba's on-disk cache, whose entries record the module
# name: a later load of an entry written under the other name fails (ModuleNotFoundError
# inside Numba). Refuse the second name here, where the message can say what to do.
if __name__ != "fastbp.kernels" and _os.path.isfile(
        _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))),
                      "fastbp", "_kernels_path.py")):
    raise ImportError(f"this is fastbp's kernel package: import it as fastbp.kernels, not as "
                      f"{__name__!r} (two names would share and break Numba's on-disk cache)")

from ._cache import drop_stale_cache, keep_parallel_reload_hooks  # noqa: E402
from ._compile_gc import install as _pause_gc_while_compiling  # noqa: E402

drop_stale_cache()  # before any cached kernel loads
keep_parallel_reload_hooks()  # likewise: entries written from now on carry their hooks
_pause_gc_while_compiling()  # the cyclic collector off while Numba compiles these kernels

from . import activations  # noqa: E402
from .activations import ACTIVATION_CODES, LOSS_CODES  # noqa: E402
from .cpu import *  # noqa: F401,F403,E402
from .cpu import __all__ as _cpu_all  # noqa: E402

__all__ = ["activations", "ACTIVATION_CODES", "LOSS_CODES", *_cpu_all]

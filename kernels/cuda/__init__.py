"""CUDA kernels (numba.cuda): the GPU twins of ``fastbp.kernels.cpu``.

Same public names and argument order as the CPU side, on device arrays (numba device arrays
or anything with ``__cuda_array_interface__``). Imports nothing from ``fastbp``. Launch
parameters live in ``config`` (tests shrink them so tiny inputs span several blocks).

    from numba import cuda
    from fastbp.kernels.cuda import forward
    forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b), RELU, Z_dev, A_dev)
"""
from . import config, scalar
from .backward import hidden_delta, loss_sum, output_delta
from .forward import forward
from .gradients import weight_gradients
from .updates import adam_update, sgd_update

__all__ = ["config", "scalar", "forward", "output_delta", "hidden_delta", "loss_sum",
           "weight_gradients", "sgd_update", "adam_update"]

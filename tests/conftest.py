"""Test session setup.

Without a real NVIDIA GPU, the GPU tests run on Numba's CUDA simulator: the variable must be
set before numba is first imported, which is why it lives here (pytest loads this file first).
"""
import ctypes.util
import os


def _has_real_gpu():
    return os.path.exists("/dev/nvidia0") and ctypes.util.find_library("cuda") is not None


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _has_real_gpu():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

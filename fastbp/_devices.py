"""Device names and engine construction. Never imports CUDA unless a CUDA device is asked for."""
import re

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(device):
    if not isinstance(device, str) or not _DEVICE.match(device) or device.startswith("cpu:"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    return device


def cuda_available():
    """True when numba.cuda is importable and sees a usable GPU (or the simulator)."""
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:
        return False


def make_engine(device, sizes, codes, loss_code, dtype):
    if device == "cpu":
        from ._engine_cpu import CPUEngine
        return CPUEngine(sizes, codes, loss_code, dtype)
    if not cuda_available():
        raise RuntimeError(f"device={device!r} was asked for but no usable CUDA GPU was found "
                           "(numba.cuda.is_available() is False); use device='cpu'")
    try:
        from ._engine_cuda import CUDAEngine
    except ImportError as exc:  # the CUDA backend is optional
        raise RuntimeError(f"device={device!r}: the CUDA backend is not available ({exc})") \
            from None
    index = int(device.split(":")[1]) if ":" in device else 0
    return CUDAEngine(sizes, codes, loss_code, dtype, device_index=index)

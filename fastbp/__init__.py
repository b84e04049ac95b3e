"""fastbp: fast backpropagation for multi-layer perceptrons, compiled with Numba."""
__version__ = "0.1.0"

from . import _kernels_path  # noqa: F401  (makes fastbp.kernels importable from a checkout)
from . import _threading  # noqa: F401  (pick a thread-safe Numba layer before any kernel runs)
from . import kernels
from ._denormals import flush_denormals, set_flush_denormals
from .callbacks import Callback, EarlyStopping, History
from .gradcheck import gradient_check
from .io import load
from .network import Network
from .optimizers import SGD, Adam, Optimizer
from .schedules import ConstantLR, CosineLR, ExponentialLR, Schedule, StepLR
from .training import DivergenceError

__all__ = ["Network", "load", "gradient_check", "SGD", "Adam", "Optimizer", "Schedule",
           "ConstantLR", "StepLR", "ExponentialLR", "CosineLR", "History", "Callback",
           "EarlyStopping", "DivergenceError", "set_flush_denormals", "flush_denormals", "kernels",
           "__version__"]

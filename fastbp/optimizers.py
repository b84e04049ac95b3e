"""Optimizers: configuration only. The updates are the compiled kernels in fastbp.kernels."""
import numpy as np

from .kernels.activations import ADAM, SGD as _SGD_CODE
from .kernels.cpu.network import (BETA1, BETA2, BIAS_DECAY, DECOUPLED, EPS, LR, MOMENTUM,
                                  N_HYPER, NESTEROV, WEIGHT_DECAY)
from ._validation import check_float
from .schedules import make_schedule


class Optimizer:
    """Base class. Subclasses set ``code`` and ``n_state`` and fill their hyper-parameters.

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    weight_decay : float
        L2 penalty (>= 0); applied to the biases too unless ``bias_decay`` is set to 0.
    schedule : str, Schedule, callable or None
        Learning-rate schedule per epoch (see ``fastbp.schedules``).
    """

    code = -1
    bias_decay = 1.0  # weight decay applies to biases too, as with a default torch param group

    def __init__(self, lr, weight_decay, schedule):
        self.lr = check_float("lr", lr, 0.0, min_inclusive=False)
        self.weight_decay = check_float("weight_decay", weight_decay, 0.0)
        self.schedule = make_schedule(schedule)

    @property
    def n_state(self):
        """Rows of per-parameter state this optimizer keeps."""
        raise NotImplementedError

    def lr_at(self, epoch, epochs):
        """The learning rate of a 0-based epoch, after the schedule.

        Parameters
        ----------
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run (used by schedules such as CosineLR).

        Returns
        -------
        float
        """
        return self.schedule.lr(self.lr, epoch, epochs)

    def hyper(self, epoch, epochs):
        """The float64 hyper-parameter vector the compiled driver reads for this epoch.

        Parameters
        ----------
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run.

        Returns
        -------
        ndarray of shape (N_HYPER,)
            Slots LR, MOMENTUM, NESTEROV, WEIGHT_DECAY, BIAS_DECAY, BETA1, BETA2, EPS,
            DECOUPLED of ``fastbp.kernels.cpu.network``.
        """
        h = np.zeros(N_HYPER)
        h[LR] = self.lr_at(epoch, epochs)
        h[WEIGHT_DECAY] = self.weight_decay
        h[BIAS_DECAY] = self.bias_decay
        return h

    def get_config(self):
        """The constructor arguments (and ``bias_decay``) as a JSON-able dict with a "name".

        Returns
        -------
        dict
        """
        cfg = {k: v for k, v in self.__dict__.items() if k != "schedule"}
        cfg["name"] = type(self).__name__
        return cfg


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's formulas (``torch.optim.SGD``, dampening 0).

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    momentum : float
        Momentum factor in [0, 1).
    nesterov : bool
        Nesterov momentum (needs momentum > 0).
    weight_decay : float
        L2 penalty added to the gradient (>= 0).
    schedule : str, Schedule, callable or None
        Learning-rate schedule per epoch ("constant", "step", "exponential", "cosine").
    """

    code = _SGD_CODE

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.momentum = check_float("momentum", momentum, 0.0, 1.0, max_inclusive=False)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool; got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; got momentum=0")
        self.nesterov = bool(nesterov)

    @property
    def n_state(self):
        return 1 if self.momentum else 0

    def hyper(self, epoch, epochs):
        """The float64 hyper-parameter vector of this epoch (see ``Optimizer.hyper``).

        Parameters
        ----------
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run.

        Returns
        -------
        ndarray of shape (N_HYPER,)
        """
        h = super().hyper(epoch, epochs)
        h[MOMENTUM] = self.momentum
        h[NESTEROV] = float(self.nesterov)
        return h


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``) or, with ``decoupled=True``, AdamW (``torch.optim.AdamW``).

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    beta1, beta2 : float
        Moment decay rates in [0, 1).
    eps : float
        Denominator term (> 0).
    weight_decay : float
        L2 penalty (coupled) or decoupled decay rate (>= 0).
    decoupled : bool
        Decoupled weight decay (AdamW).
    schedule : str, Schedule, callable or None
        Learning-rate schedule per epoch.
    """

    code = ADAM

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 decoupled=False, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.beta1 = check_float("beta1", beta1, 0.0, 1.0, max_inclusive=False)
        self.beta2 = check_float("beta2", beta2, 0.0, 1.0, max_inclusive=False)
        self.eps = check_float("eps", eps, 0.0, min_inclusive=False)
        if not isinstance(decoupled, (bool, np.bool_)):
            raise TypeError(f"decoupled must be a bool; got {decoupled!r}")
        self.decoupled = bool(decoupled)

    @property
    def n_state(self):
        return 2

    def hyper(self, epoch, epochs):
        """The float64 hyper-parameter vector of this epoch (see ``Optimizer.hyper``).

        Parameters
        ----------
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run.

        Returns
        -------
        ndarray of shape (N_HYPER,)
        """
        h = super().hyper(epoch, epochs)
        h[BETA1], h[BETA2], h[EPS] = self.beta1, self.beta2, self.eps
        h[DECOUPLED] = float(self.decoupled)
        return h


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(optimizer):
    """An Optimizer from an instance or a name ("sgd", "adam": default settings)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer instance "
                     f"(fastbp.SGD, fastbp.Adam); got {optimizer!r}")


def optimizer_from_config(cfg):
    cfg = dict(cfg)
    name = cfg.pop("name")
    cls = {"SGD": SGD, "Adam": Adam}.get(name)
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r} in saved state")
    bias_decay = cfg.pop("bias_decay", None)
    opt = cls(**cfg)
    if bias_decay is not None:
        opt.bias_decay = bias_decay
    return opt

"""Learning-rate schedules, applied once per epoch (like ``torch.optim.lr_scheduler``)."""
import math

from ._validation import check_float, check_int


class Schedule:
    """Base class: ``lr(base_lr, epoch, epochs)`` gives the learning rate of a 0-based epoch."""

    def lr(self, base_lr, epoch, epochs):
        """The learning rate of a 0-based epoch.

        Parameters
        ----------
        base_lr : float
            The optimizer's learning rate.
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run.

        Returns
        -------
        float
        """
        return base_lr

    def get_config(self):
        """The constructor arguments as a JSON-able dict with a "name".

        Returns
        -------
        dict
        """
        return {"name": type(self).__name__, **self.__dict__}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({args})"


class ConstantLR(Schedule):
    """The base learning rate every epoch."""


class StepLR(Schedule):
    """``base_lr * gamma ** (epoch // step_size)`` (torch.optim.lr_scheduler.StepLR).

    Parameters
    ----------
    step_size : int
        Epochs between decays (>= 1).
    gamma : float
        Multiplicative decay (> 0).
    """

    def __init__(self, step_size=10, gamma=0.1):
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = check_float("gamma", gamma, 0.0, min_inclusive=False)

    def lr(self, base_lr, epoch, epochs):
        """The learning rate of a 0-based epoch.

        Parameters
        ----------
        base_lr : float
            The optimizer's learning rate.
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run.

        Returns
        -------
        float
        """
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """``base_lr * gamma ** epoch`` (torch.optim.lr_scheduler.ExponentialLR).

    Parameters
    ----------
    gamma : float
        Multiplicative decay per epoch (> 0).
    """

    def __init__(self, gamma=0.95):
        self.gamma = check_float("gamma", gamma, 0.0, min_inclusive=False)

    def lr(self, base_lr, epoch, epochs):
        """The learning rate of a 0-based epoch.

        Parameters
        ----------
        base_lr : float
            The optimizer's learning rate.
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run.

        Returns
        -------
        float
        """
        return base_lr * self.gamma ** epoch


class CosineLR(Schedule):
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``T_max`` epochs (torch's closed form).

    Parameters
    ----------
    T_max : int or None
        Epochs of one half cosine; None uses the ``epochs`` given to fit.
    eta_min : float
        Final learning rate (>= 0).
    """

    def __init__(self, T_max=None, eta_min=0.0):
        self.T_max = None if T_max is None else check_int("T_max", T_max, 1)
        self.eta_min = check_float("eta_min", eta_min, 0.0)

    def lr(self, base_lr, epoch, epochs):
        """The learning rate of a 0-based epoch.

        Parameters
        ----------
        base_lr : float
            The optimizer's learning rate.
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run.

        Returns
        -------
        float
        """
        t_max = self.T_max or max(1, epochs)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2


SCHEDULES = {"constant": ConstantLR, "step": StepLR, "exponential": ExponentialLR,
             "cosine": CosineLR}


def make_schedule(schedule):
    """None, a name from SCHEDULES, a Schedule, or a callable ``f(epoch) -> factor``."""
    if schedule is None:
        return ConstantLR()
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, a Schedule or a "
                             f"callable; got {schedule!r}")
        return SCHEDULES[schedule]()
    if callable(schedule):
        return _CallableSchedule(schedule)
    raise TypeError(f"schedule must be a name, a Schedule or a callable; got {schedule!r}")


class _CallableSchedule(Schedule):
    def __init__(self, fn):
        self.fn = fn

    def lr(self, base_lr, epoch, epochs):
        """The learning rate of a 0-based epoch.

        Parameters
        ----------
        base_lr : float
            The optimizer's learning rate.
        epoch : int
            0-based epoch.
        epochs : int
            Epochs of the whole run.

        Returns
        -------
        float
        """
        return base_lr * float(self.fn(epoch))

"""CPU kernels (numba.njit). Same public names as ``kernels.cuda`` where both exist."""
from .activation import bias_activation, mul_activation_grad, softmax_row
from .backward import hidden_delta, loss_sum, output_delta
from .forward import forward
from .gradients import weight_gradients
from .network import (N_HYPER, act_view, apply_update, backward_network, bias_view,
                      forward_network, n_weights, predict_network, train_batches,
                      update_is_finite, weight_view, z_view)
from .updates import (adam_range, adam_range_finite, adam_update, sgd_range, sgd_range_finite,
                      sgd_update)
from . import scalar

__all__ = ["forward", "bias_activation", "mul_activation_grad", "softmax_row", "output_delta",
           "hidden_delta", "loss_sum", "weight_gradients", "sgd_update", "adam_update",
           "sgd_range", "adam_range", "sgd_range_finite", "adam_range_finite", "apply_update",
           "update_is_finite", "forward_network", "backward_network",
           "train_batches", "predict_network", "n_weights", "weight_view", "bias_view",
           "act_view", "z_view", "N_HYPER", "scalar"]

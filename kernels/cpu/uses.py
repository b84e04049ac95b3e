"""``Uses``: which activations, loss and optimizer a network uses, known when kernels compile.

The kernels dispatch on integer codes at run time (``bias_activation(Z, b, code, A)``), so
every branch is compiled, for every activation, loss and optimizer, although a network uses
two or three of them. Compiling the unused ones was about 2.7 s of a 13 s cold start (a first
digits epoch with an empty cache; docs/performance.md). A ``Uses`` value passed as the
optional last argument (``uses``) of the dispatching kernels and drivers carries the set in
its Numba *type*: each branch for a code outside the set compiles to nothing (the code must
then never be passed: the kernel would silently skip it). Left out or None, every code
compiles, as before. Each distinct set is its own compiled specialisation (and cache entry).

    from fastbp.kernels.cpu.uses import Uses
    uses = Uses([RELU, SOFTMAX], loss=CROSS_ENTROPY, optimizer=SGD)
    train_batches(..., uses=uses)
"""
from numba import types
from numba.core import cgutils
from numba.extending import (NativeValue, intrinsic, models, overload, register_model,
                             typeof_impl, unbox)

from ..activations import (ADAM, BINARY_CROSS_ENTROPY, CROSS_ENTROPY, ELU, IDENTITY,
                           LEAKY_RELU, MSE, RELU, SGD, SIGMOID, SOFTMAX, TANH)

#: Bit offsets of the three kinds of code in the mask.
_LOSS_BIT = 16
_OPT_BIT = 24
#: The mask's bits of activations; of activations and losses; of optimizers.
_ACTIVATION_BITS = (1 << _LOSS_BIT) - 1
_LAYER_BITS = (1 << _OPT_BIT) - 1
_OPTIMIZER_BITS = ~_LAYER_BITS


#: Activations with no transcendental function in their loops (softmax's exps are its own
#: vectorised polynomial): the set a network of only these compiles for.
PLAIN_ACTIVATIONS = (IDENTITY, RELU, LEAKY_RELU, SOFTMAX)
#: Plus the activations whose loops are one exp (or expm1) and a division: a network of
#: only these compiles neither softplus' and GELU's longer loops nor the threaded nets'
#: split activation passes, which only those two pay for (activation.py).
EXP_ACTIVATIONS = PLAIN_ACTIVATIONS + (SIGMOID, TANH, ELU)


class Uses:
    """The activation codes, loss code and optimizer code a network uses (any may be left
    out: None means that kind is not used by the caller, so none of its branches compile)."""

    __slots__ = ("mask",)

    def __init__(self, activations=(), loss=None, optimizer=None):
        mask = 0
        for code in activations:
            if not 0 <= int(code) <= SOFTMAX:
                raise ValueError(f"Uses: unknown activation code {code!r}")
            mask |= 1 << int(code)
        if loss is not None:
            if int(loss) not in (MSE, BINARY_CROSS_ENTROPY, CROSS_ENTROPY):
                raise ValueError(f"Uses: unknown loss code {loss!r}")
            mask |= 1 << (_LOSS_BIT + int(loss))
        if optimizer is not None:
            if int(optimizer) not in (SGD, ADAM):
                raise ValueError(f"Uses: unknown optimizer code {optimizer!r}")
            mask |= 1 << (_OPT_BIT + int(optimizer))
        self.mask = mask

    @classmethod
    def for_network(cls, codes, loss=None, optimizer=None):
        """The set a network's kernels compile for: its loss and optimizer exactly, and of
        activations the smallest of ``PLAIN_ACTIVATIONS``, ``EXP_ACTIVATIONS`` and all of
        them that holds the network's. Three activation sets rather than one per network:
        every distinct set is its own compilation of the drivers, and the transcendental
        activations are the ones worth leaving out (docs/performance.md)."""
        codes = {int(c) for c in codes}
        if codes <= set(PLAIN_ACTIVATIONS):
            acts = PLAIN_ACTIVATIONS
        elif codes <= set(EXP_ACTIVATIONS):
            acts = EXP_ACTIVATIONS
        else:
            acts = range(SOFTMAX + 1)
        return cls(acts, loss, optimizer)

    def optimizer_only(self):
        """This set with its activations and loss left out: what the training driver passes
        its update functions (``optimizer_only`` in compiled code), so nets that differ only
        in activations or loss share their compiled updates."""
        out = Uses()
        out.mask = self.mask & _OPTIMIZER_BITS
        return out

    def __eq__(self, other):
        return isinstance(other, Uses) and other.mask == self.mask

    def __hash__(self):
        return hash(("Uses", self.mask))

    def __repr__(self):
        return f"Uses(mask={self.mask:#x})"


class UsesType(types.Type):
    """Numba type of a ``Uses`` value: the set is in the type, the value carries nothing."""

    def __init__(self, mask):
        self.mask = mask
        super().__init__(name=f"Uses({mask:#x})")


#: One type per mask, made once: Numba types a ``Uses`` argument in Python on every call (its
#: C fast path knows only numbers, arrays and tuples), and building and interning a new type
#: instance each time cost about 3 us of a driver call's 9.5 us dispatch (seventeenth session).
_TYPES = {}


@typeof_impl.register(Uses)
def _typeof_uses(val, c):
    typ = _TYPES.get(val.mask)
    if typ is None:
        typ = _TYPES[val.mask] = UsesType(val.mask)
    return typ


register_model(UsesType)(models.OpaqueModel)


@unbox(UsesType)
def _unbox_uses(typ, obj, c):
    return NativeValue(cgutils.get_null_value(c.context.get_value_type(typ)))


def _has(uses, bit):
    # at typing time: a Uses type answers from its mask; None, omitted or anything else
    # stands for "every code"
    if isinstance(uses, UsesType):
        return bool(uses.mask >> bit & 1)
    return True


def uses_activation(uses, code):
    """Whether kernels compiled for the Numba type ``uses`` need activation ``code``."""
    return _has(uses, code)


def uses_loss(uses, code):
    """Whether kernels compiled for the Numba type ``uses`` need loss ``code``."""
    return _has(uses, _LOSS_BIT + code)


def uses_optimizer(uses, code):
    """Whether kernels compiled for the Numba type ``uses`` need optimizer ``code``."""
    return _has(uses, _OPT_BIT + code)


@intrinsic
def without_optimizer(typingctx, uses):
    """``uses`` with its optimizer left out (None stays None): the forward and backward
    kernels take this, so training and inference share their compiled specialisations."""
    return _narrowed(uses, _LAYER_BITS)


def _narrowed(uses, keep):
    """The typing of an intrinsic that keeps the bits ``keep`` of a ``Uses`` type (None
    stays None)."""
    if isinstance(uses, UsesType):
        out = UsesType(uses.mask & keep)

        def codegen(context, builder, sig, args):
            return cgutils.get_null_value(context.get_value_type(out))
        return out(uses), codegen
    if isinstance(uses, (types.NoneType, types.Omitted)):
        return types.none(uses), lambda context, builder, sig, args: context.get_dummy_value()
    return None


@intrinsic
def activations_only(typingctx, uses):
    """``uses`` with its loss and optimizer left out (None stays None): the layers'
    activation kernels (a layer's forward pass, its activation derivative) take this, so
    a net with another loss or optimizer finds them compiled."""
    return _narrowed(uses, _ACTIVATION_BITS)


@intrinsic
def optimizer_only(typingctx, uses):
    """``uses`` with its activations and loss left out (None stays None): the update
    functions take this (``Uses.optimizer_only``), so a driver compiled for another
    activation set or loss with the same optimizer finds them compiled (the update of a
    threaded net is about 2.6 s of a cold compile, a checked net's three update functions
    more; docs/performance.md)."""
    return _narrowed(uses, _OPTIMIZER_BITS)


def has_optimizer(uses, opt):
    """In ``@njit`` code: whether kernels compiled for ``uses`` include optimizer code ``opt``
    (always true for None or left out). The drivers test it before dispatching, so a code
    outside the set raises instead of updating nothing."""
    raise NotImplementedError("call from @njit code")


@overload(has_optimizer, inline="always")
def _has_optimizer_impl(uses, opt):
    if isinstance(uses, UsesType):
        mask = uses.mask >> _OPT_BIT
        return lambda uses, opt: opt >= 0 and (mask >> opt) & 1 == 1
    return lambda uses, opt: True

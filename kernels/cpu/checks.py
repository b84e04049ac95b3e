"""Cheap whole-array checks the training loop runs between chunks of minibatches."""
import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload


@intrinsic
def _magnitude_bits(typingctx, x):
    """The bits of a float32/float64 without its sign, as a non-negative int32/int64 (a
    bitcast and a mask: vectorises). For finite values their order is the order of the
    magnitudes; infinities and NaNs are exactly the patterns at or above every exponent bit
    set (0x7F800000, 0x7FF0000000000000)."""
    if x not in (types.float32, types.float64):
        return None
    width = 32 if x == types.float32 else 64
    ity = types.int32 if width == 32 else types.int64

    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], ir.IntType(width))
        return builder.and_(bits, ir.Constant(ir.IntType(width), (1 << (width - 1)) - 1))
    return ity(x), codegen


@njit(cache=True, error_model="numpy", inline='always')
def top_magnitude_bits(flat):
    """The largest ``_magnitude_bits`` over the 1-D float32/float64 array ``flat`` (0 when
    empty): one vectorised integer maximum, used by ``all_finite`` and ``bounds.max_abs``."""
    top = _magnitude_bits(flat.dtype.type(0))  # typed as the bits: one wide max
    for k in range(flat.shape[0]):
        top = max(top, _magnitude_bits(flat[k]))
    return top


def _finite(flat):
    """Whether every entry of the 1-D contiguous array ``flat`` is finite."""


@overload(_finite, inline="always")
def _finite_impl(flat):
    if flat.dtype in (types.float32, types.float64):
        limit = 0x7F800000 if flat.dtype == types.float32 else 0x7FF0000000000000
        return lambda flat: top_magnitude_bits(flat) < limit

    def impl(flat):
        bad = 0
        for k in range(flat.shape[0]):
            bad |= not math.isfinite(flat[k])
        return bad == 0
    return impl


@njit(cache=True, nogil=True, error_model="numpy")
def all_finite(a):
    """True when every entry of the contiguous array ``a`` is finite. Allocates nothing.

    No early exit, and for float32/float64 the maximum of the bits without the sign (an
    infinity or NaN has every exponent bit set, so it is at least that pattern): one
    vectorised integer reduction. Measured on 1792 x 64 float32, a compiled call from
    Python: 4.4 us against 7.1 for an OR of ``not isfinite`` and far more for a loop that
    returns at the first bad value; the answer is almost always True.
    """
    return _finite(a.reshape(-1))

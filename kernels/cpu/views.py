"""Borrowed array views: no reference counting, for views that never leave the function.

A Numba view (``A.ravel()``, ``buf[i:j].reshape(...)``) holds a counted reference to its
parent's memory: an atomic increment and decrement, about 30 ns per view. A batch-1 training
step makes dozens of them, a sixth of its time. These intrinsics build the view with no owner
(as ``simd.stack_scratch`` does), so nothing is counted. The caller guarantees that the parent
outlives the view: use them only for views that are passed down to kernels and dropped, never
returned to Python or stored.
"""
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def borrowed_flat(typingctx, arr):
    """The elements of a C-contiguous array as a 1-D view (``arr.ravel()``), uncounted."""
    if not isinstance(arr, types.Array) or arr.layout != "C":
        return None
    outty = types.Array(arr.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(arr)(context, builder, args[0])
        out = context.make_array(outty)(context, builder)
        itemsize = context.get_abi_sizeof(context.get_data_type(arr.dtype))
        context.populate_array(out, data=src.data, shape=[src.nitems],
                               strides=[context.get_constant(types.intp, itemsize)],
                               itemsize=context.get_constant(types.intp, itemsize),
                               meminfo=None)
        return out._getvalue()
    return outty(arr), codegen


@intrinsic
def borrowed_2d(typingctx, flat, offset, rows, cols):
    """``flat[offset:offset + rows*cols].reshape((rows, cols))``, uncounted and unchecked."""
    if not isinstance(flat, types.Array) or flat.ndim != 1 or flat.layout != "C":
        return None
    outty = types.Array(flat.dtype, 2, "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(flat)(context, builder, args[0])
        off, r, c = (context.cast(builder, v, t, types.intp)
                     for v, t in zip(args[1:], sig.args[1:]))
        out = context.make_array(outty)(context, builder)
        itemsize = context.get_abi_sizeof(context.get_data_type(flat.dtype))
        isz = context.get_constant(types.intp, itemsize)
        data = cgutils.gep_inbounds(builder, src.data, off)
        context.populate_array(out, data=data, shape=[r, c],
                               strides=[builder.mul(c, isz), isz], itemsize=isz,
                               meminfo=None)
        return out._getvalue()
    return outty(flat, offset, rows, cols), codegen


@intrinsic
def borrowed_1d(typingctx, flat, offset, n):
    """``flat[offset:offset + n]``, uncounted and unchecked."""
    if not isinstance(flat, types.Array) or flat.ndim != 1 or flat.layout != "C":
        return None
    outty = types.Array(flat.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(flat)(context, builder, args[0])
        off, size = (context.cast(builder, v, t, types.intp)
                     for v, t in zip(args[1:], sig.args[1:]))
        out = context.make_array(outty)(context, builder)
        itemsize = context.get_abi_sizeof(context.get_data_type(flat.dtype))
        isz = context.get_constant(types.intp, itemsize)
        context.populate_array(out, data=cgutils.gep_inbounds(builder, src.data, off),
                               shape=[size], strides=[isz], itemsize=isz, meminfo=None)
        return out._getvalue()
    return outty(flat, offset, n), codegen

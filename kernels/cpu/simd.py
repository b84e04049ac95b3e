"""Explicit SIMD vectors for Numba CPU kernels.

LLVM's auto-vectoriser cannot keep a matrix-product tile in registers across the reduction
loop (the output might alias the inputs as far as it knows), so a plain Numba triple loop
loads and stores the output for every multiply-add. These intrinsics give Numba a vector value
type (``Vec``: 16 float32 or 8 float64 lanes, 64 bytes, one AVX-512 register; LLVM splits it on
narrower CPUs) that lives in registers like any scalar, plus the few operations the small-GEMM
kernels need: masked load and store (lanes past ``rem`` are neither read nor written), splat,
fused multiply-add, add, a register transpose, and a fixed-size stack scratch array.

Every index is a flat element offset into a 1-D C-contiguous array; the caller guarantees that
the lanes it asks for are in bounds (kernels/cpu/gemm.py does, and tests/test_gemm.py checks
odd shapes against NumPy).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

#: Elements in the array ``stack_scratch`` returns (32 KiB of float32, 64 KiB of float64).
SCRATCH = 8192

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


class Vec(types.Type):
    """A SIMD vector of ``lanes`` elements of ``dtype`` (a Numba value type)."""

    def __init__(self, dtype, lanes):
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"Vec({dtype}x{lanes})")


_VECS = {types.float32: Vec(types.float32, 16), types.float64: Vec(types.float64, 8)}


def _vec(dtype):
    try:
        return _VECS[dtype]
    except KeyError:
        raise TypeError(f"simd: float32 or float64 expected, got {dtype}") from None


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        elt = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(elt, fe_type.lanes))


def _suffix(vt):
    return f"v{vt.lanes}{'f32' if vt.dtype == types.float32 else 'f64'}"


def _lane_mask(builder, lanes, rem):
    """<lanes x i1>: lane < rem. Compared in 32-bit lanes (``rem`` clamped to [0, lanes]
    first): one compare per 16 lanes, where 64-bit lanes took two and a mask merge, and
    the register tile's loop then rebuilt its masks every step (7% on ``A.T @ B``)."""
    rem = builder.sext(rem, _I64) if rem.type.width < 64 else rem
    zero, full = ir.Constant(_I64, 0), ir.Constant(_I64, lanes)
    rem = builder.select(builder.icmp_signed("<", rem, full), rem, full)
    rem = builder.select(builder.icmp_signed(">", rem, zero), rem, zero)
    rem = builder.trunc(rem, _I32)
    vty = ir.VectorType(_I32, lanes)
    splat = builder.insert_element(ir.Constant(vty, ir.Undefined), rem, ir.Constant(_I32, 0))
    splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(_I32, lanes),
                                                             [0] * lanes))
    return builder.icmp_signed("<", ir.Constant(vty, list(range(lanes))), splat)


def _elem_ptr(context, builder, aryty, ary, idx):
    return builder.gep(context.make_array(aryty)(context, builder, ary).data, [idx])


def _masked_load(context, builder, vt, ptr, mask):
    vty = context.get_value_type(vt)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [ptr.type, _I32, mask.type, vty]),
        f"llvm.masked.load.{_suffix(vt)}.p0")
    align = ir.Constant(_I32, context.get_abi_sizeof(context.get_value_type(vt.dtype)))
    return builder.call(fn, [ptr, align, mask, ir.Constant(vty, None)])


def _masked_store(context, builder, vt, value, ptr, mask):
    vty = context.get_value_type(vt)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vty, ptr.type, _I32, mask.type]),
        f"llvm.masked.store.{_suffix(vt)}.p0")
    align = ir.Constant(_I32, context.get_abi_sizeof(context.get_value_type(vt.dtype)))
    builder.call(fn, [value, ptr, align, mask])


@intrinsic
def lanes(typingctx, like):
    """Lanes of the vector for ``like``'s dtype (a compile-time constant)."""
    n = _vec(like.dtype).lanes

    def codegen(context, builder, sig, args):
        return ir.Constant(_I64, n)
    return types.intp(like), codegen


@intrinsic
def vload(typingctx, arr, idx, rem):
    """Vector of ``arr[idx : idx + min(lanes, rem)]``; lanes at and past ``rem`` read nothing
    and hold 0 (``rem <= 0``: no memory is touched)."""
    vt = _vec(arr.dtype)

    def codegen(context, builder, sig, args):
        ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        return _masked_load(context, builder, vt, ptr, _lane_mask(builder, vt.lanes, args[2]))
    return vt(arr, idx, rem), codegen


@intrinsic
def vstore(typingctx, arr, idx, rem, v):
    """``arr[idx : idx + min(lanes, rem)] = v[:rem]``; nothing past ``rem`` is written."""
    def codegen(context, builder, sig, args):
        ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        _masked_store(context, builder, v, args[3], ptr, _lane_mask(builder, v.lanes, args[2]))
        return context.get_dummy_value()
    return types.void(arr, idx, rem, v), codegen


@intrinsic
def vsplat(typingctx, x, like):
    """Every lane ``x``, converted to ``like``'s dtype."""
    vt = _vec(like.dtype)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vt)
        x = context.cast(builder, args[0], sig.args[0], vt.dtype)
        v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, vt.lanes),
                                                        [0] * vt.lanes))
    return vt(x, like), codegen


@intrinsic
def vzero(typingctx, like):
    """All lanes 0, of ``like``'s dtype."""
    vt = _vec(like.dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)
    return vt(like), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane-wise, one rounding (llvm.fma)."""
    if not (isinstance(c, Vec) and a == c and b == c):
        return None

    def codegen(context, builder, sig, args):
        vty = args[2].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                            f"llvm.fma.{_suffix(c)}")
        return builder.call(fn, list(args))
    return c(a, b, c), codegen


@intrinsic
def vadd(typingctx, a, b):
    """``a + b`` lane-wise."""
    if not (isinstance(a, Vec) and a == b):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return a(a, b), codegen


@intrinsic
def transpose_block(typingctx, src, src_idx, src_ld, rows, cols, dst, dst_idx, dst_ld):
    """Transpose a lanes x lanes block in registers.

    Reads rows ``r < rows`` of the block at ``src[src_idx + r * src_ld + c]`` (columns
    ``c < cols``; everything else counts as 0) and writes all ``lanes`` rows of the transpose:
    ``dst[dst_idx + c * dst_ld + r] = block[r, c]`` for every r, c < lanes.
    """
    vt = _vec(src.dtype)
    n = vt.lanes

    def codegen(context, builder, sig, args):
        s, si, sld, nrows, ncols, d, di, dld = args
        zero = ir.Constant(_I64, 0)
        col_mask = _lane_mask(builder, n, ncols)
        none = _lane_mask(builder, n, zero)
        rows = []
        for r in range(n):
            off = builder.add(si, builder.mul(sld, ir.Constant(_I64, r)))
            ptr = _elem_ptr(context, builder, sig.args[0], s, off)
            live = builder.icmp_signed(">", nrows, ir.Constant(_I64, r))
            rows.append(_masked_load(context, builder, vt, ptr,
                                     builder.select(live, col_mask, none)))
        # butterfly: at stage h swap the off-diagonal h x h blocks of every 2h x 2h block
        h = n // 2
        while h >= 1:
            lo = [lane if lane & h == 0 else n + lane - h for lane in range(n)]
            hi = [lane + h if lane & h == 0 else n + lane for lane in range(n)]
            lo_mask = ir.Constant(ir.VectorType(_I32, n), lo)
            hi_mask = ir.Constant(ir.VectorType(_I32, n), hi)
            for r in range(n):
                if r & h == 0:
                    a, b = rows[r], rows[r + h]
                    rows[r] = builder.shuffle_vector(a, b, lo_mask)
                    rows[r + h] = builder.shuffle_vector(a, b, hi_mask)
            h //= 2
        full = _lane_mask(builder, n, ir.Constant(_I64, n))
        for c in range(n):
            off = builder.add(di, builder.mul(dld, ir.Constant(_I64, c)))
            ptr = _elem_ptr(context, builder, sig.args[5], d, off)
            _masked_store(context, builder, vt, rows[c], ptr, full)
        return context.get_dummy_value()
    sig = types.void(src, types.int64, types.int64, types.int64, types.int64, dst, types.int64,
                     types.int64)
    return sig, codegen


@intrinsic
def stack_scratch(typingctx, like):
    """A 1-D array of ``SCRATCH`` elements of ``like``'s dtype on the stack (uninitialised).

    It lives as long as the calling function's frame: never return it or store it.
    """
    arrty = types.Array(like.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        elty = context.get_data_type(like.dtype)
        ptr = cgutils.alloca_once(builder, elty, size=ir.Constant(_I64, SCRATCH))
        ptr.align = 64  # cache lines: a 64-byte vector load from it never spans two
        ary = context.make_array(arrty)(context, builder)
        itemsize = context.get_abi_sizeof(elty)
        context.populate_array(ary, data=ptr,
                               shape=[context.get_constant(types.intp, SCRATCH)],
                               strides=[context.get_constant(types.intp, itemsize)],
                               itemsize=context.get_constant(types.intp, itemsize),
                               meminfo=None)
        return ary._getvalue()
    return arrty(like), codegen

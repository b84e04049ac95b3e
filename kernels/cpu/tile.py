"""The matrix products' register tile, emitted as LLVM IR in one piece.

``tile(a, a_off, ais, ars, b, b_off, ldb, c, c_off, ldc, R, rem, accumulate, ROWS, VECS)``
computes, for ``i < ROWS`` and the first ``min(VECS * lanes, rem)`` columns ``j``,

    c[c_off + i*ldc + j] (+)= sum_{r < R} a[a_off + i*ais + r*ars] * b[b_off + r*ldb + j]

with the ``ROWS x VECS`` accumulators (``simd.py`` vectors) in registers over the whole
reduction: each step loads ``VECS`` vectors of ``b`` and broadcasts ``ROWS`` scalars of ``a``.
Lanes at and past ``rem`` are neither read nor written. ``ROWS`` and ``VECS`` must be integer
literals (they fix the unrolling); the rest are run-time values, and where a caller passes a
constant stride LLVM folds it once the tile is inlined into that caller's code.

Why one intrinsic instead of the same loop written with ``vload``/``vfma`` in Numba: the
result is the same machine code, but Numba types and lowers every vector operation of a
hand-unrolled 16-accumulator tile one by one, and inlining such functions copies their IR
block by block. Written this way the products compile several times faster (the cold
compile of a first epoch, docs/performance.md), and they ran no slower (tests/test_gemm.py
checks the results against NumPy; asv's product benchmarks time them).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .simd import _I64, _elem_ptr, _lane_mask, _masked_load, _masked_store, _suffix, _vec

#: The tile shapes the products use, (rows, vectors): anything else is refused at typing.
SHAPES = ((8, 2), (4, 2), (1, 2), (16, 1), (8, 1), (1, 1))


@intrinsic
def tile(typingctx, a, a_off, ais, ars, b, b_off, ldb, c, c_off, ldc, R, rem, accumulate,
         rows, vecs):
    """See the module docstring."""
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(vecs, types.IntegerLiteral)):
        return None
    if (rows.literal_value, vecs.literal_value) not in SHAPES:
        return None
    if not (isinstance(a, types.Array) and a.dtype == b.dtype == c.dtype):
        return None
    vt = _vec(a.dtype)
    n_rows = rows.literal_value
    n_vecs = vecs.literal_value
    sig = types.void(a, a_off, ais, ars, b, b_off, ldb, c, c_off, ldc, R, rem, accumulate,
                     rows, vecs)

    def codegen(context, builder, sig, args):
        def i64(k):  # argument k as int64
            return context.cast(builder, args[k], sig.args[k], types.int64)

        a_arr, b_arr, c_arr = args[0], args[4], args[7]
        a_off, ais, ars = i64(1), i64(2), i64(3)
        b_off, ldb, c_off, ldc, R, rem = i64(5), i64(6), i64(8), i64(9), i64(10), i64(11)
        accumulate = context.cast(builder, args[12], sig.args[12], types.boolean)
        V = vt.lanes
        vty = context.get_value_type(vt)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                             f"llvm.fma.{_suffix(vt)}")
        masks = [_lane_mask(builder, V, builder.sub(rem, ir.Constant(_I64, v * V)))
                 for v in range(n_vecs)]
        # accumulators in entry-block allocas: LLVM promotes them to registers (phis)
        acc = [[cgutils.alloca_once_value(builder, ir.Constant(vty, None))
                for _ in range(n_vecs)] for _ in range(n_rows)]
        with cgutils.for_range(builder, R) as loop:
            r = loop.index
            bo = builder.add(b_off, builder.mul(r, ldb))
            bv = [_masked_load(context, builder, vt,
                               _elem_ptr(context, builder, sig.args[4], b_arr,
                                         builder.add(bo, ir.Constant(_I64, v * V))),
                               masks[v])
                  for v in range(n_vecs)]
            ao = builder.add(a_off, builder.mul(r, ars))
            for i in range(n_rows):
                idx = builder.add(ao, builder.mul(ais, ir.Constant(_I64, i)))
                x = builder.load(_elem_ptr(context, builder, sig.args[0], a_arr, idx))
                xs = builder.insert_element(ir.Constant(vty, ir.Undefined), x,
                                            ir.Constant(ir.IntType(32), 0))
                xs = builder.shuffle_vector(xs, xs, ir.Constant(ir.VectorType(ir.IntType(32), V),
                                                                [0] * V))
                for v in range(n_vecs):
                    builder.store(builder.call(fma, [xs, bv[v], builder.load(acc[i][v])]),
                                  acc[i][v])

        def c_ptr(i, v):
            off = builder.add(c_off, builder.add(builder.mul(ldc, ir.Constant(_I64, i)),
                                                 ir.Constant(_I64, v * V)))
            return _elem_ptr(context, builder, sig.args[7], c_arr, off)

        with builder.if_then(accumulate):
            for i in range(n_rows):
                for v in range(n_vecs):
                    old = _masked_load(context, builder, vt, c_ptr(i, v), masks[v])
                    builder.store(builder.fadd(builder.load(acc[i][v]), old), acc[i][v])
        for i in range(n_rows):
            for v in range(n_vecs):
                _masked_store(context, builder, vt, builder.load(acc[i][v]), c_ptr(i, v),
                              masks[v])
        return context.get_dummy_value()
    return sig, codegen

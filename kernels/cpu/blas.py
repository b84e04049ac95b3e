"""``gemm_into(A, B, out)``: ``out[...] = A @ B`` as one call of BLAS ``sgemm``/``dgemm``.

The products hand large operands to BLAS (``gemm.py``). Numba's ``np.dot(A, B, out)`` does
the same call, but its implementation covers vectors, every layout and its checks, and typing
and compiling it (plus one wrapper per layout) took about 0.5 s of a cold first epoch. This
intrinsic emits only the calls, through the BLAS wrappers Numba itself uses
(``numba_xxgemm``, and ``numba_xxgemv`` for one-row or one-column products as ``np.dot``
does, on scipy's BLAS), for the layouts the products pass: ``A`` and ``B`` C- or
F-contiguous (a transposed C array is F), ``out`` C-contiguous.

Row-major ``out (M, N)`` is column-major ``out.T (N, M)``, and ``out.T = B.T @ A.T``: BLAS
gets ``B`` as its first operand and ``A`` as its second, each transposed or not by its
layout, so nothing is copied.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas

_KIND = {types.float32: "s", types.float64: "d"}


def _gemm_types_ok(A, B, out):
    arrays = (A, B, out)
    return (all(isinstance(t, types.Array) and t.ndim == 2 for t in arrays)
            and A.dtype == B.dtype == out.dtype and out.dtype in _KIND
            and A.layout in ("C", "F") and B.layout in ("C", "F") and out.layout == "C")


@intrinsic
def gemm_into(typingctx, A, B, out):
    """``out[...] = A @ B`` (A (M, K), B (K, N), out (M, N); one float dtype; A and B C- or
    F-contiguous, out C-contiguous and not overlapping them). Shapes are not checked, and
    with ``K == 0`` a one-row or one-column ``out`` is left as it was (GEMV returns at once):
    the caller zeroes it (``gemm._dot_into``)."""
    if not _gemm_types_ok(A, B, out):
        return None
    ensure_blas()
    kind = _KIND[out.dtype]

    def codegen(context, builder, sig, args):
        a_ty, b_ty, _ = sig.args
        a, b, c = (context.make_array(t)(context, builder, v) for t, v in zip(sig.args, args))
        M, K = cgutils.unpack_tuple(builder, a.shape, 2)
        N = cgutils.unpack_tuple(builder, b.shape, 2)[1]
        intp = context.get_value_type(types.intp)
        one = ir.Constant(intp, 1)
        char = ir.IntType(8)
        voidp = cgutils.voidptr_t
        notrans, trans = ir.Constant(char, ord("n")), ir.Constant(char, ord("t"))
        kind_c = ir.Constant(char, ord(kind))
        dtype = sig.args[2].dtype
        alpha = builder.bitcast(
            cgutils.alloca_once_value(builder, context.get_constant(dtype, 1.0)), voidp)
        beta = builder.bitcast(
            cgutils.alloca_once_value(builder, context.get_constant(dtype, 0.0)), voidp)
        a_p, b_p, c_p = (builder.bitcast(x.data, voidp) for x in (a, b, c))

        def at_least_one(v):  # BLAS rejects a leading dimension of 0, even for empty sides
            return builder.select(builder.icmp_signed("<", v, one), one, v)

        def check(status):
            with cgutils.if_unlikely(builder, cgutils.is_not_null(builder, status)):
                context.call_conv.return_user_exc(builder, RuntimeError,
                                                  ("gemm_into: the BLAS call failed",))

        gemv = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.IntType(32), [char, char, intp, intp, voidp, voidp, intp, voidp, voidp, voidp]),
            "numba_xxgemv")
        gemm = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.IntType(32), [char, char, char, intp, intp, intp, voidp, voidp, intp, voidp, intp,
                             voidp, voidp, intp]), "numba_xxgemm")
        def call_gemv(x_ty, rows, cols, transposed, x_p, v_p):
            """out = X @ v, or X.T @ v when ``transposed``, for X (rows, cols): a C-contiguous
            X is X.T column-major (cols x rows), an F-contiguous one X itself."""
            m, n = (cols, rows) if x_ty.layout == "C" else (rows, cols)
            flag = notrans if (x_ty.layout == "C") == transposed else trans
            check(builder.call(gemv, (kind_c, flag, m, n, alpha, x_p, at_least_one(m), v_p,
                                      beta, c_p)))

        # One row or one column: a matrix-vector product (GEMV reads the matrix in place;
        # GEMM's packing costs more than such a product: batch-1 steps, as np.dot does).
        with builder.if_else(builder.icmp_signed("==", M, one)) as (row, not_row):
            with row:  # out (N,) = B.T @ a_row
                call_gemv(b_ty, K, N, True, b_p, a_p)
            with not_row:
                with builder.if_else(builder.icmp_signed("==", N, one)) as (col, general):
                    with col:  # out (M,) = A @ b_col
                        call_gemv(a_ty, M, K, False, a_p, b_p)
                    with general:
                        # first operand B.T (N x K): C-contiguous B is that matrix
                        # column-major (ld N), F-contiguous B is B itself (ld K), transposed
                        trans_b, ld_b = (notrans, N) if b_ty.layout == "C" else (trans, K)
                        # second operand A.T (K x M): likewise, ld K for C-contiguous A, else M
                        trans_a, ld_a = (notrans, K) if a_ty.layout == "C" else (trans, M)
                        check(builder.call(gemm, (
                            kind_c, trans_b, trans_a, N, M, K, alpha, b_p, at_least_one(ld_b),
                            a_p, at_least_one(ld_a), beta, c_p, at_least_one(N))))
        return context.get_dummy_value()

    return types.none(A, B, out), codegen

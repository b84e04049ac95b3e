"""Matrix products for the training kernels: ``A @ B``, ``A.T @ B`` and ``A @ B.T``.

Own register-tiled products (``tile.py``: a tile of 4 or 8 output rows by one or two
64-byte vectors stays in registers over the whole reduction) below ``BLAS_MIN_MACS_*``
multiply-adds; BLAS (``blas.gemm_into``; ``np.dot`` for strided views) at and above it and for
one-row ``A @ B.T`` on one thread. Threaded products of at most ``stream.STREAM_MAX_ROWS``
rows with a matrix of at least ``stream.STREAM_MIN_BYTES`` read that matrix in memory order
instead (``stream.py``: online learning's products are bound by reading the weights). Why not
BLAS for everything: a training step of a small network is a handful of small products, where
BLAS's call, packing and dispatch cost more than the arithmetic (measured, float32 32x64x128:
BLAS 7.4 us, this 2.8 us), and OpenBLAS may be pinned to AVX2 while LLVM emits AVX-512 here.
The own products run on the calling thread unless the caller passes ``threaded=True`` (then
products from ``PARALLEL_MIN_MACS`` up give each Numba thread whole column panels; with
``threaded=None``, the default, the threaded code is not compiled at all), and
allocate nothing (``A @ B.T`` packs panels of ``B`` into a
fixed stack buffer), and each output element is summed in a fixed order, so results are
deterministic.

All arrays 2-D, one float dtype; ``out`` must not overlap the inputs. The own products need
C-contiguous arrays; other layouts go through BLAS.
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .blas import _gemm_types_ok, gemm_into
from .fpmode import fp_adopt, fp_mode
from .views import borrowed_flat
from .simd import SCRATCH, lanes, stack_scratch, transpose_block, vload, vstore
from .stream import STREAM_TASK_ROWS, nn_stream_task, nn_stream_width, nt_stream_task, streams
from .tile import tile

#: Products with at least this many multiply-adds go to BLAS. Measured on 2 cores: on one
#: thread the own float32 code wins below 1 << 24 (whole mnist steps); spread over two threads
#: with packed panels it beat BLAS on every product of the issue's workloads, wide's
#: 256x2048x2048 included (322 against 219 GFLOP/s), so threaded float32 keeps it to 1 << 31.
BLAS_MIN_MACS_F32 = 1 << 24
BLAS_MIN_MACS_F32_THREADED = 1 << 31
BLAS_MIN_MACS_F64 = 1 << 22
#: float64 over two threads: own panels beat BLAS on mnist-sized products (128x784x256 116
#: against 87 GFLOP/s; A.T @ B 784x128x256 101 against 53) and, alone, lost on wide ones
#: (256x1024x2048 66 against 89); but in a threaded training step BLAS's threads compete with
#: Numba's (the wide net's float64 step: 152-165 ms with BLAS from 1 << 26, 78-87 with own
#: panels throughout), so threaded float64 keeps them to 1 << 31 too.
BLAS_MIN_MACS_F64_THREADED = 1 << 31
#: Products with at least this many multiply-adds split their column panels over Numba's
#: threads (when the caller allows it); smaller ones stay on the calling thread.
PARALLEL_MIN_MACS = 1 << 20


def eight_row_tiles_pay(cpu_name, cpu_features):
    """Whether ``A @ B`` and ``A @ B.T`` should use 8-row register tiles (16 accumulators)
    on this CPU, as ``A.T @ B`` always does, rather than 4-row ones.

    Measured, in one process, both compiled side by side (same bits): on an Intel Xeon
    (Ice Lake, ``icelake-server``) 8-row tiles were faster everywhere, 1.09-1.44x for the
    threaded ``A @ B`` from 64x512x512 to 256x2048x2048, 1.11-1.49x for the threaded
    ``A @ B.T``, 1.07-1.31x and 1.20-1.22x for the one-thread ones (32x64x128 included):
    two FMA units of 4 cycles' latency keep 8 chains busy with no slack, 16 with some. On
    an AMD EPYC (Zen 5) the threaded ``A @ B`` measured slower with them (256x1024x2048: 183
    -> 160 GFLOP/s, second session; slower again in the eighth): there they stay 4 rows,
    as everywhere without AVX-512 (16 accumulators of 64 bytes would not fit in 16 AVX2
    registers). On an AMD EPYC (Zen 4, ``znver4``: 512-bit instructions on 256-bit units)
    they were faster again: 1.02-1.14x on the threaded ``A @ B`` and ``A @ B.T`` from
    128x256x128 to 256x2048x2048 and 1.05x on the one-thread 32x64x128 (two interleaved runs
    of 9 rounds, twenty-second session), so only Zen 5 keeps 4 rows. Decided from the CPU
    Numba compiles for, which is part of its cache key, so a cached product always matches.

    Parameters
    ----------
    cpu_name : str
        LLVM's name of the target CPU (``llvmlite.binding.get_host_cpu_name()``).
    cpu_features : str
        LLVM's feature string (``+avx512f,...``).

    Returns
    -------
    bool
        True for 8-row tiles.
    """
    return "+avx512f" in cpu_features.split(",") and not cpu_name.startswith("znver5")


def _target_cpu():
    """The CPU name and features Numba compiles for (its ``CPUCodegen`` rule)."""
    import llvmlite.binding as ll
    from numba.core import config
    name = config.CPU_NAME or ll.get_host_cpu_name()
    features = (config.CPU_FEATURES if config.CPU_NAME is not None
                else ll.get_host_cpu_features().flatten())
    return name, features or ""


#: 8-row register tiles for ``A @ B`` and ``A @ B.T`` on this CPU (``eight_row_tiles_pay``);
#: a compile-time constant of every product. The results are the same bits either way.
EIGHT_ROW_TILES = eight_row_tiles_pay(*_target_cpu())


@njit(cache=True, inline='always')
def _panel(a, a_off, ais, ars, b, b_off, ldb, c, c_off, ldc, M, R, rem, accumulate, tall):
    """Column panel of ``c`` one or two vectors wide: for i < M and j < min(2 lanes, rem),
    ``c[c_off + i*ldc + j] (+)= sum_{r<R} a[a_off + i*ais + r*ars] * b[b_off + r*ldb + j]``,
    in ``tile.py`` register tiles. One vector wide (``rem <= lanes``: output layers of up to
    16 classes): 8 rows at a time, so 8 multiply-add chains hide the FMA latency, and with
    ``tall`` 16 rows first (Intel Xeon, one process, two runs, same bits: ``A @ B`` 32x128x10
    1.09-1.11x, 128x128x10 1.01-1.13x; ``A.T @ B`` 128x32x10 1.09-1.10x, 128x128x10 1.21x;
    float64 ``lanes`` = 8 wide 1.06-1.22x; thirteenth session). Two wide: 4 rows, and with
    ``tall`` (a constant at every call site) 8-row tiles first, 16 accumulators instead of 8.
    That pays where a's rows are adjacent (``ais`` = 1, ``A.T @ B``: 2048x256x2048 over two
    threads 241 -> 269 GFLOP/s, 784x128x256 201 -> 243), so ``A.T @ B`` always asks for it.
    Where they are a row apart (``A @ B``, ``A @ B.T``) it depends on the CPU: slower on an AMD
    Zen 5 (``A @ B`` 256x1024x2048: 183 -> 160, 8 lines a step instead of 4), faster on an
    Intel Ice Lake (1.07-1.49x), so those pass ``EIGHT_ROW_TILES``. The tile's height never
    changes the result: every output element is one chain of FMAs in reduction order."""
    i = 0
    if rem <= lanes(a):
        while tall and i + 16 <= M:
            tile(a, a_off + i * ais, ais, ars, b, b_off, ldb, c, c_off + i * ldc, ldc, R, rem,
                 accumulate, 16, 1)
            i += 16
        while i + 8 <= M:
            tile(a, a_off + i * ais, ais, ars, b, b_off, ldb, c, c_off + i * ldc, ldc, R, rem,
                 accumulate, 8, 1)
            i += 8
        while i < M:
            tile(a, a_off + i * ais, ais, ars, b, b_off, ldb, c, c_off + i * ldc, ldc, R, rem,
                 accumulate, 1, 1)
            i += 1
        return
    while tall and i + 8 <= M:
        tile(a, a_off + i * ais, ais, ars, b, b_off, ldb, c, c_off + i * ldc, ldc, R, rem,
             accumulate, 8, 2)
        i += 8
    while i + 4 <= M:
        tile(a, a_off + i * ais, ais, ars, b, b_off, ldb, c, c_off + i * ldc, ldc, R, rem,
             accumulate, 4, 2)
        i += 4
    while i < M:
        tile(a, a_off + i * ais, ais, ars, b, b_off, ldb, c, c_off + i * ldc, ldc, R, rem,
             accumulate, 1, 2)
        i += 1


def _c_layout(A, B, out):
    """Whether all three are typed C-contiguous (a compile-time constant)."""


@overload(_c_layout)
def _c_layout_impl(A, B, out):
    ok = A.layout == "C" and B.layout == "C" and out.layout == "C"
    return lambda A, B, out: ok


def _flat(A):
    """``A.ravel()`` of a C-contiguous array, as an uncounted view (``views.py``)."""


@overload(_flat)
def _flat_impl(A):
    if A.layout == "C":
        return lambda A: borrowed_flat(A)
    return lambda A: A.ravel()  # not reached: the products send other layouts to BLAS


def _dot_into(A, B, out):
    """``out[...] = A @ B`` through BLAS, for any layouts."""


@overload(_dot_into)
def _dot_into_impl(A, B, out):
    if _gemm_types_ok(A, B, out):  # contiguous operands: the one BLAS call, compiled cheaply
        def impl(A, B, out):
            if A.shape[1] == 0:  # BLAS would leave out as it was (GEMV's quick return)
                _zero(out)
            elif out.shape[0] > 0 and out.shape[1] > 0:
                gemm_into(A, B, out)
        return impl
    if out.layout == "C":
        def impl(A, B, out):
            np.dot(A, B, out)
    else:  # Numba's np.dot(out=) wants a C-contiguous out
        def impl(A, B, out):
            out[...] = np.dot(A, B)
    return impl


def _never_threaded(threaded_type):
    """Whether a ``threaded`` argument of this Numba type can never allow threads: None or
    left out. Such specialisations never reference the threaded panels, so they are never
    compiled (they are about a third of a cold compile)."""
    return isinstance(threaded_type, (types.NoneType, types.Omitted))


def _serial_only(threaded):
    """``_never_threaded`` of the argument's type, as a compile-time constant in njit code."""


@overload(_serial_only)
def _serial_only_impl(threaded):
    serial = _never_threaded(threaded)
    return lambda threaded: serial


#: A ``threaded`` value for nets none of whose weight matrices can stream (every one below
#: ``stream.STREAM_MIN_BYTES``, so ``streams`` is never true): threaded as True is, but the
#: specialisation holds no streamed products, about 4.5 s of a threaded net's cold compile.
#: An integer, so that its Numba type tells it from True's (``_streamed``).
THREADED_NO_STREAM = 1


def _streamed(threaded):
    """Whether a ``threaded`` argument of this Numba type may take the streamed products:
    a compile-time constant, False for ``THREADED_NO_STREAM`` (an integer)."""


@overload(_streamed, inline="always")
def _streamed_impl(threaded):
    may = not isinstance(threaded, types.Integer)
    return lambda threaded: may


def _stream_if_allowed(parallel):
    """A stub ``run(threaded, a, b, c, M, K, N)`` calling ``parallel(a, b, c, M, K, N)``,
    compiled to nothing for ``THREADED_NO_STREAM`` (whose callers never reach it)."""
    def run(threaded, a, b, c, M, K, N):
        raise NotImplementedError("call from @njit code")

    @overload(run, inline="always")
    def _run(threaded, a, b, c, M, K, N):
        if isinstance(threaded, types.Integer):
            return lambda threaded, a, b, c, M, K, N: None
        return lambda threaded, a, b, c, M, K, N: parallel(a, b, c, M, K, N)
    return run


@njit(cache=True, inline='always')
def _blas_wins(macs, a, threaded):
    """Whether BLAS is the faster choice: large products. (One-row ``A @ B.T`` also goes to
    BLAS, see ``matmul_nt``; one-row ``A @ B`` and the outer products ``A.T @ B`` with one
    reduction row stay here, measured faster: float32 1x64x128 0.19 against 0.25 us,
    outer product 64x128 0.43 against 1.10 us.)"""
    if _serial_only(threaded) or not threaded:
        return macs >= (BLAS_MIN_MACS_F32 if lanes(a) == 16 else BLAS_MIN_MACS_F64)
    return macs >= (BLAS_MIN_MACS_F32_THREADED if lanes(a) == 16 else BLAS_MIN_MACS_F64_THREADED)


@njit(cache=True)
def _zero(out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 0


@njit(cache=True, inline='always')
def _nn_packed_panel(a, b, c, P, M, R, N, j0):
    """Column panel ``j0 .. j0 + 2 lanes`` of ``c (M, N) = a (M, R) @ b (R, N)``, the
    reduction in blocks whose rows of ``b`` are first copied next to each other into ``P``:
    read in place, the panel's rows sit ``N`` elements apart, and for wide ``b`` that stride
    maps them onto a few cache sets (own code 124 GFLOP/s against BLAS's 197 on float32
    256x1024x2048 before packing)."""
    V = lanes(a)
    W = 2 * V
    KC = SCRATCH // W
    rem = N - j0
    for k0 in range(0, R, KC):
        kc = min(KC, R - k0)
        for r in range(kc):
            o = (k0 + r) * N + j0
            vstore(P, r * W, V, vload(b, o, rem))
            vstore(P, r * W + V, V, vload(b, o + V, rem - V))
        # a's stride along the reduction as the literal 1: it specialises the panel (passed
        # as a variable it ran 1.3x slower)
        _panel(a, k0, R, 1, P, 0, W, c, j0, N, M, kc, rem, k0 > 0, EIGHT_ROW_TILES)


@njit(cache=True, parallel=True)
def _nn_panels_parallel(a, b, c, M, K, N):
    """Every two-vector column panel of ``c (M, N) = a (M, K) @ b (K, N)``, one panel per
    task: tasks write disjoint columns, so no two threads touch the same output."""
    W = 2 * lanes(a)
    mode = fp_mode()  # the caller's denormal mode, for every task (fpmode.py)
    for p in prange((N + W - 1) // W):
        saved = fp_adopt(mode)
        P = stack_scratch(a)  # one per task, on that thread's stack
        _nn_packed_panel(a, b, c, P, M, K, N, p * W)
        fp_adopt(saved)


@njit(cache=True, parallel=True)
def _nn_stream_parallel(a, b, c, M, K, N):
    """``c (M, N) = a (M, K) @ b (K, N)`` for few rows (``stream.py``), one block of
    ``nn_stream_width`` columns per task (disjoint columns). A parallel function of its own:
    as a branch of ``_nn_panels_parallel`` it made that one compile 2 s longer."""
    W = nn_stream_width(M, N, a)
    mode = fp_mode()
    for p in prange((N + W - 1) // W):
        saved = fp_adopt(mode)
        nn_stream_task(a, b, c, M, K, N, p * W, min(N, (p + 1) * W))
        fp_adopt(saved)


#: ``A.T @ B`` packs blocks of ``A`` (``TN_KC`` reduction rows by ``TN_MC`` output rows) when
#: A's rows are a multiple of ``ALIAS_BYTES`` apart: read in place, the rows of one output
#: row group then fall on a single cache set. Measured, float32 256x2048x2048 over two
#: threads: 262 GFLOP/s packed against 192 in place; 128x784x256 (no aliasing) keeps the
#: in-place path (341 against 268 packed). ``TN_KC`` = 48 is the most that fits the stack
#: buffer with the B panel (48 x (32 + 128) of 8192 floats); against 32, three runs of 11
#: interleaved rounds in one process, 256x2048x2048: 255/286/264 -> 273/298/275 GFLOP/s.
TN_KC = 48
TN_MC = 128
ALIAS_BYTES = 4096


@njit(cache=True, inline='always')
def tn_packs(M, V):
    """Whether the threaded ``A.T @ B`` packs ``a`` (M output rows, V lanes): where a's rows
    are a multiple of ``ALIAS_BYTES`` apart."""
    return (M * (64 // V)) % ALIAS_BYTES == 0


@njit(cache=True, inline='always')
def tn_splits(R, M, N, like):
    """Whether a threaded ``A.T @ B`` (R reduction rows, M x N output) splits over the threads:
    enough arithmetic, or few rows into a large output, which is bound by writing it (as a
    streamed product, ``stream.py``). ``gradient_step.fuses`` asks the same question."""
    return R * M * N >= PARALLEL_MIN_MACS or streams(R, M, N, like)


@njit(cache=True, inline='always')
def tn_chunk(pack, V):
    """Reduction rows the threaded ``A.T @ B`` sums in registers before adding them to its
    output (which fixes its rounding; ``gradient_step.py`` reproduces it): ``TN_KC`` where it
    packs, else as many as its panel buffer holds."""
    return TN_KC if pack else SCRATCH // (2 * V)


#: With a packed, the threaded ``A.T @ B`` gives each task up to this many column panels of
#: one row block: each chunk of a's block is packed once for all of them instead of once
#: per panel. Measured on the Intel Xeon in one process against one panel a task (same
#: bits, asserted; 9 interleaved rounds), GFLOP/s over two threads, R rows x M x N:
#: 256x1024x2048 178 -> 204, 256x2048x2048 177 -> 196, 256x2048x1024 174 -> 205,
#: 128x1024x256 185 -> 230, 64x4096x1024 151 -> 177, 32x1024x512 169 -> 228.
TN_GROUP = 8
#: ... while keeping at least this many tasks.
TN_MIN_TASKS = 8


@njit(cache=True, inline='always')
def tn_group(npan, nblk, pack):
    """Column panels per task of the threaded ``A.T @ B`` (``npan`` panels, ``nblk`` row
    blocks): ``TN_GROUP`` where a is packed and the tasks stay at least ``TN_MIN_TASKS``,
    else 1 (read in place, a has nothing to share)."""
    if not pack:
        return 1
    return max(1, min(TN_GROUP, (npan * nblk) // TN_MIN_TASKS))


@njit(cache=True, inline='always')
def _tn_block(a, b, c, P, M, R, N, i0, mc, p0, p1, pack):
    """Rows ``i0 .. i0 + mc`` and the two-vector column panels ``p0 .. p1 - 1`` of
    ``c (M, N) = a (R, M).T @ b (R, N)``, a chunk of the reduction at a time: each panel's
    rows of b copied into ``P`` (offset 0, two vectors a row); with ``pack``, a's block too,
    once per chunk for all the panels (after b's, ``TN_MC`` elements a row, chunks of
    ``TN_KC``), else a is read in place (chunks as long as ``P`` allows). Every output
    element sums the same chunks in the same order whatever the panels per call. Both paths
    meet in one ``_panel`` call, so the threaded ``A.T @ B`` holds one copy of the
    register-tile code instead of two (a threaded fit's cold compile)."""
    V = lanes(a)
    W = 2 * V
    rows = min(mc, M - i0)
    PA = TN_KC * W
    KC = tn_chunk(pack, V)
    for k0 in range(0, R, KC):
        kc = min(KC, R - k0)
        if pack:
            for r in range(kc):
                oa = (k0 + r) * M + i0
                for v in range(0, rows, V):
                    vstore(P, PA + r * TN_MC + v, rows - v, vload(a, oa + v, rows - v))
        for p in range(p0, p1):
            j0 = p * W
            rem = N - j0
            for r in range(kc):
                o = (k0 + r) * N + j0
                vstore(P, r * W, V, vload(b, o, rem))
                vstore(P, r * W + V, V, vload(b, o + V, rem - V))
            if pack:
                src, a_off, ars = P, PA, TN_MC
            else:
                src, a_off, ars = a, k0 * M + i0, M
            _panel(src, a_off, 1, ars, P, 0, W, c, i0 * N + j0, N, rows, kc, rem, k0 > 0,
                   True)


@njit(cache=True, parallel=True)
def _tn_panels_parallel(a, b, c, M, R, N):
    """``c (M, N) = a (R, M).T @ b (R, N)`` over Numba's threads: one task per two-vector
    column panel (a read in place), or, where a's rows alias (``ALIAS_BYTES``), per block
    of ``TN_MC`` rows of ``tn_group`` such panels with both factors packed. Tasks write
    disjoint tiles."""
    V = lanes(a)
    W = 2 * V
    pack = tn_packs(M, V)
    mc = TN_MC if pack else max(M, 1)
    npan = (N + W - 1) // W
    nblk = (M + mc - 1) // mc
    G = tn_group(npan, nblk, pack)
    ngrp = (npan + G - 1) // G
    mode = fp_mode()
    for t in prange(ngrp * nblk):
        saved = fp_adopt(mode)
        P = stack_scratch(a)  # one per task, on that thread's stack
        ib = t // ngrp
        p0 = (t - ib * ngrp) * G
        _tn_block(a, b, c, P, M, R, N, ib * mc, mc, p0, min(npan, p0 + G), pack)
        fp_adopt(saved)


@njit(cache=True, inline='always')
def _nt_panel(a, b, c, P, M, J, K, k0):
    """Output columns ``k0 .. k0 + 2 lanes`` of ``c (M, K) = a (M, J) @ b (K, J).T``, packing
    b's rows into ``P`` a chunk of the reduction at a time."""
    V = lanes(a)
    W = 2 * V
    JC = SCRATCH // W
    krem = K - k0
    for j0 in range(0, J, JC):
        jn = min(JC, J - j0)
        # P[jj * W + kk] = B[k0 + kk, j0 + jj]
        for jb in range(0, jn, V):
            transpose_block(b, k0 * J + j0 + jb, J, krem, jn - jb, P, jb * W, W)
            if krem > V:
                transpose_block(b, (k0 + V) * J + j0 + jb, J, krem - V, jn - jb, P,
                                jb * W + V, W)
        _panel(a, j0, J, 1, P, 0, W, c, k0, K, M, jn, krem, j0 > 0, EIGHT_ROW_TILES)


@njit(cache=True, parallel=True)
def _nt_panels_parallel(a, b, c, M, J, K):
    W = 2 * lanes(a)
    mode = fp_mode()
    for p in prange((K + W - 1) // W):
        saved = fp_adopt(mode)
        P = stack_scratch(a)  # one per task, on that thread's stack
        _nt_panel(a, b, c, P, M, J, K, p * W)
        fp_adopt(saved)


@njit(cache=True, parallel=True)
def _nt_stream_parallel(a, b, c, M, J, K):
    """``c (M, K) = a (M, J) @ b (K, J).T`` for few rows (``stream.py``), one block of
    ``STREAM_TASK_ROWS`` rows of b per task."""
    T = STREAM_TASK_ROWS
    mode = fp_mode()
    for p in prange((K + T - 1) // T):
        saved = fp_adopt(mode)
        nt_stream_task(a, b, c, M, J, K, p * T, min(K, (p + 1) * T))
        fp_adopt(saved)


_nn_stream = _stream_if_allowed(_nn_stream_parallel)
_nt_stream = _stream_if_allowed(_nt_stream_parallel)


@njit(cache=True)
def matmul(A, B, out, threaded=None):
    """``out = A @ B``: A (M, K), B (K, N), out (M, N).

    Parameters
    ----------
    A : ndarray (M, K)
        Left factor.
    B : ndarray (K, N)
        Right factor.
    out : ndarray (M, N)
        Output, overwritten.
    threaded : bool or None
        Allow spreading a large product over Numba's threads. None (the default):
        the calling thread only, and the threaded code is not even compiled; a bool is
        checked at run time. Pass True only where no other thread pool is busy and, under
        GNU OpenMP, not in a forked child of a process that launched parallel code.
    """
    M, K = A.shape
    N = B.shape[1]
    if not _c_layout(A, B, out):  # views with strides: BLAS handles them
        _dot_into(A, B, out)
        return
    a = _flat(A)
    # few rows and a large B (stream.py): bound by reading B, so over the threads whatever
    # the arithmetic (two cores read faster than one: a 512-512-512-10 step at batch 1,
    # 0.22 -> 0.11 ms). Only threaded specialisations hold the streamed code (``is not
    # None`` prunes it from the others: 1.1 s of a digits cold start when it was compiled in)
    if threaded is not None and threaded and _streamed(threaded) and streams(M, K, N, a):
        _nn_stream(threaded, a, _flat(B), _flat(out), M, K, N)
        return
    if _blas_wins(M * K * N, a, threaded):
        _dot_into(A, B, out)
        return
    b = _flat(B)
    c = _flat(out)
    if threaded is not None and threaded and M * K * N >= PARALLEL_MIN_MACS:
        _nn_panels_parallel(a, b, c, M, K, N)
        return
    W = 2 * lanes(a)
    for j0 in range(0, N, W):
        _panel(a, 0, K, 1, b, j0, N, c, j0, N, M, K, N - j0, False, EIGHT_ROW_TILES)


@njit(cache=True)
def matmul_tn(A, B, out, threaded=None):
    """``out = A.T @ B``: A (R, M), B (R, N), out (M, N) (the weight gradient ``A_prev.T @ delta``).

    Parameters
    ----------
    A : ndarray (R, M)
        Left factor, used transposed.
    B : ndarray (R, N)
        Right factor.
    out : ndarray (M, N)
        Output, overwritten.
    threaded : bool or None
        Allow spreading a large product over Numba's threads. None (the default):
        the calling thread only, and the threaded code is not even compiled; a bool is
        checked at run time. Pass True only where no other thread pool is busy and, under
        GNU OpenMP, not in a forked child of a process that launched parallel code.
    """
    R, M = A.shape
    N = B.shape[1]
    if not _c_layout(A, B, out):
        _dot_into(A.T, B, out)
        return
    a = _flat(A)
    if _blas_wins(M * R * N, a, threaded):
        _dot_into(A.T, B, out)
        return
    b = _flat(B)
    c = _flat(out)
    if threaded is not None and threaded and tn_splits(R, M, N, a):
        _tn_panels_parallel(a, b, c, M, R, N)
        return
    W = 2 * lanes(a)
    for j0 in range(0, N, W):
        _panel(a, 0, 1, M, b, j0, N, c, j0, N, M, R, N - j0, False, True)


@njit(cache=True)
def matmul_nt(A, B, out, threaded=None):
    """``out = A @ B.T``: A (M, J), B (K, J), out (M, K) (the delta recursion ``delta @ W.T``).

    Panels of ``B`` (2 vectors of rows by up to ``SCRATCH / (2 lanes)`` columns) are
    transposed in registers into a stack buffer, then multiplied like ``matmul``.

    Parameters
    ----------
    A : ndarray (M, J)
        Left factor.
    B : ndarray (K, J)
        Right factor, used transposed.
    out : ndarray (M, K)
        Output, overwritten.
    threaded : bool or None
        Allow spreading a large product over Numba's threads. None (the default):
        the calling thread only, and the threaded code is not even compiled; a bool is
        checked at run time. Pass True only where no other thread pool is busy and, under
        GNU OpenMP, not in a forked child of a process that launched parallel code.
    """
    M, J = A.shape
    K = B.shape[0]
    if not _c_layout(A, B, out):
        _dot_into(A, B.T, out)
        return
    a = _flat(A)
    # few rows and a large B, threaded: read B's rows in order (stream.py). That replaces
    # BLAS's one-row GEMV too, whose threads would compete with Numba's (still spinning after
    # a parallel region: a 1024-4096-1024 step at batch 1 took 20 ms instead of 12 on one
    # thread). Pruned from unthreaded specialisations, as in ``matmul``.
    if threaded is not None and threaded and _streamed(threaded) and streams(M, J, K, a):
        _nt_stream(threaded, a, _flat(B), _flat(out), M, J, K)
        return
    # one row on one thread: BLAS's dot-product GEMV reads B's rows in place (1x128 @
    # (256x128).T: 1.18 us against 2.99 for packing the panels here)
    if M == 1 or _blas_wins(M * J * K, a, threaded):
        _dot_into(A, B.T, out)
        return
    if J == 0:
        _zero(out)
        return
    b = _flat(B)
    c = _flat(out)
    if threaded is not None and threaded and M * J * K >= PARALLEL_MIN_MACS:
        _nt_panels_parallel(a, b, c, M, J, K)
        return
    W = 2 * lanes(a)
    P = stack_scratch(a)
    for k0 in range(0, K, W):
        _nt_panel(a, b, c, P, M, J, K, k0)

"""Products of a few rows with a large matrix that read the matrix once, in memory order.

At batch sizes up to ``STREAM_MAX_ROWS`` a product does too little arithmetic per weight to
hide memory: its time is the time to read ``B``. The register-tiled panels (``gemm.py``)
read ``B (K, N)`` a column panel at a time, 128 bytes from each row, ``N`` elements apart;
for a weight matrix that is not in cache that stride defeats the prefetchers (measured,
float32 1 x 1024 @ 1024 x 4096 over two threads: 15 GB/s, against 50 for a GEMV that reads
whole rows). Here every task reads whole runs of rows instead:

* ``A @ B`` (``nn_stream_cols``): a task owns a block of output columns, keeps the sums of
  its ``M`` rows in a stack buffer (in L1) and walks B's rows top to bottom, four at a time,
  each row's run of the block contiguous. Every output element is the same chain of fused
  multiply-adds, in the same order, as in the register tile (``tile.py``: from 0, reduction
  index ascending) over the whole reduction, so the result is bit for bit the tiles' on one
  thread (tests/test_stream.py).
* ``A @ B.T`` (``nt_stream_rows``): a task owns a block of B's rows (output columns); each
  output element is a dot product of two contiguous rows, summed lane-wise in vectors
  (lane ``l`` takes the terms ``j = l mod lanes`` in order) and then across lanes in order.

Both are deterministic and allocate nothing (the horizontal sums go through a stack buffer).
``gemm.matmul`` and ``gemm.matmul_nt`` choose them (``streams``) when called with
``threaded=True``, as the tasks of two parallel loops of their own (``gemm._nn_stream_parallel``,
``_nt_stream_parallel``); unthreaded specialisations hold none of this code (compiled in, it
cost a digits cold start 1.1 s). The engine threads a net with such a layer at such a batch
whatever its arithmetic (``fastbp/_threading.py::threaded_flag``): two cores read faster.
Cost: a threaded net's first epoch compiles them too (mnist-sized, empty cache: 16.7-16.8 ->
21.2-21.7 s).
"""
from numba import njit

from .simd import SCRATCH, lanes, stack_scratch, vadd, vfma, vload, vsplat, vstore, vzero

#: Products with at most this many rows stream ``B`` (measured, 1024 x 4096 float32 over two
#: threads, ms a product; tiles / streamed: see docs/performance.md, tenth session).
STREAM_MAX_ROWS = 8
#: ... when ``B`` holds at least this many bytes: below it B stays in a core's L2 between
#: steps and the register tiles, which do more arithmetic per load, are as fast or faster.
STREAM_MIN_BYTES = 1 << 20
#: Bytes of each row of ``B`` a task of ``A @ B`` reads in one run: a page, so each row's
#: run is one prefetch stream (and M rows of this width stay in L1: 8 x 4 KiB).
STREAM_RUN_BYTES = 4096
#: Tasks at least, for ``A @ B`` over threads: a few cores already draw the memory's full rate,
#: and reading the thread count would keep the products out of Numba's cache.
STREAM_MIN_TASKS = 4
#: Rows of ``B`` per task of ``A @ B.T``.
STREAM_TASK_ROWS = 64


@njit(cache=True, inline='always')
def streams(M, K, N, like):
    """Whether a product of ``M`` rows with a ``K x N`` matrix (dtype of ``like``) streams."""
    return 0 < M <= STREAM_MAX_ROWS and K * N * (64 // lanes(like)) >= STREAM_MIN_BYTES


@njit(cache=True, inline='always')
def nn_stream_width(M, N, like):
    """Output columns per task of ``A @ B`` (M rows): a page of each row of B, or fewer so
    that there are at least ``STREAM_MIN_TASKS`` tasks and a task's sums fit
    ``simd.SCRATCH``."""
    V = lanes(like)
    run = min(STREAM_RUN_BYTES // (64 // V), (SCRATCH // M - 2 * V) // V * V)
    tasks = max((N + run - 1) // run, STREAM_MIN_TASKS)
    width = (N + tasks - 1) // tasks
    return max(V, (width + V - 1) // V * V)


@njit(cache=True, inline='always')
def nn_stream_cols(a, b, c, M, K, N, j0, j1, acc):
    """Columns ``j0 .. j1`` of ``c (M, N) = a (M, K) @ b (K, N)`` (flat C-order arrays),
    summed in ``acc``: at least ``M * (j1 - j0 + 2 lanes)`` elements of scratch (its rows are
    a vector longer than the block: rows a multiple of 4 KiB apart, as c's are, make every
    store look like it might feed the next row's loads, and the loads wait)."""
    V = lanes(a)
    w = j1 - j0
    wv = w // V * V
    ld = (w + V - 1) // V * V + V
    for i in range(M):
        for j in range(0, w, V):
            vstore(acc, i * ld + j, V, vzero(a))
    # four rows of b at a time: each sum's chain still takes the rows in order, but a
    # vector of sums is loaded and stored once per four rows instead of once per row
    k4 = K // 4 * 4
    for k in range(0, k4, 4):
        bo = k * N + j0
        for i in range(M):
            x0 = vsplat(a[i * K + k], a)
            x1 = vsplat(a[i * K + k + 1], a)
            x2 = vsplat(a[i * K + k + 2], a)
            x3 = vsplat(a[i * K + k + 3], a)
            o = i * ld
            # whole vectors with the literal lane count (plain loads and stores: masked
            # stores are several times slower here), then one masked tail
            for j in range(0, wv, V):
                s = vfma(x0, vload(b, bo + j, V), vload(acc, o + j, V))
                s = vfma(x1, vload(b, bo + N + j, V), s)
                s = vfma(x2, vload(b, bo + 2 * N + j, V), s)
                vstore(acc, o + j, V, vfma(x3, vload(b, bo + 3 * N + j, V), s))
            if wv < w:
                r = w - wv
                s = vfma(x0, vload(b, bo + wv, r), vload(acc, o + wv, V))
                s = vfma(x1, vload(b, bo + N + wv, r), s)
                s = vfma(x2, vload(b, bo + 2 * N + wv, r), s)
                vstore(acc, o + wv, V, vfma(x3, vload(b, bo + 3 * N + wv, r), s))
    for k in range(k4, K):
        bo = k * N + j0
        for i in range(M):
            x = vsplat(a[i * K + k], a)
            o = i * ld
            for j in range(0, wv, V):
                vstore(acc, o + j, V, vfma(x, vload(b, bo + j, V), vload(acc, o + j, V)))
            if wv < w:
                vstore(acc, o + wv, V, vfma(x, vload(b, bo + wv, w - wv), vload(acc, o + wv, V)))
    for i in range(M):
        for j in range(0, w, V):
            vstore(c, i * N + j0 + j, w - j, vload(acc, i * ld + j, V))


@njit(cache=True, inline='always')
def nt_stream_rows(a, b, c, M, J, K, k0, k1, scr):
    """Columns ``k0 .. k1`` of ``c (M, K) = a (M, J) @ b (K, J).T`` (flat C-order arrays);
    ``scr``: at least ``lanes`` elements of scratch. Each dot product sums in four vectors
    (vector ``q`` of each group of four to accumulator ``q``, a leftover whole vector and
    the masked tail to the first), added as ``(s0 + s1) + (s2 + s3)`` and then across lanes
    in order: four chains, so one dot product does not wait on the multiply-add latency."""
    V = lanes(a)
    j4 = J // (4 * V) * (4 * V)
    jv = J // V * V
    for k in range(k0, k1):
        bo = k * J
        for i in range(M):
            ao = i * J
            s0 = vzero(a)
            s1 = vzero(a)
            s2 = vzero(a)
            s3 = vzero(a)
            for j in range(0, j4, 4 * V):
                s0 = vfma(vload(a, ao + j, V), vload(b, bo + j, V), s0)
                s1 = vfma(vload(a, ao + j + V, V), vload(b, bo + j + V, V), s1)
                s2 = vfma(vload(a, ao + j + 2 * V, V), vload(b, bo + j + 2 * V, V), s2)
                s3 = vfma(vload(a, ao + j + 3 * V, V), vload(b, bo + j + 3 * V, V), s3)
            for j in range(j4, jv, V):
                s0 = vfma(vload(a, ao + j, V), vload(b, bo + j, V), s0)
            if jv < J:
                s0 = vfma(vload(a, ao + jv, J - jv), vload(b, bo + jv, J - jv), s0)
            vstore(scr, 0, V, vadd(vadd(s0, s1), vadd(s2, s3)))
            s = scr[0]
            for lane in range(1, V):
                s += scr[lane]
            c[i * K + k] = s


# The tasks as functions of their own, not inlined: inlined into the body of a parallel loop
# (then a branch of gemm's panel loops), each kernel made that loop compile about 4 s longer
# (a threaded fit's cold start 17 -> 27 s); called from a loop of its own, about 1 s.


@njit(cache=True, error_model="numpy")
def nn_stream_task(a, b, c, M, K, N, j0, j1):
    """``nn_stream_cols`` with its own stack buffer: one task of a parallel loop."""
    nn_stream_cols(a, b, c, M, K, N, j0, j1, stack_scratch(a))


@njit(cache=True, error_model="numpy")
def nt_stream_task(a, b, c, M, J, K, k0, k1):
    """``nt_stream_rows`` with its own stack buffer: one task of a parallel loop."""
    nt_stream_rows(a, b, c, M, J, K, k0, k1, stack_scratch(a))

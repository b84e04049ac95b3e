"""Compile every CUDA kernel of fastbp.kernels.cuda to PTX for a real GPU, without a GPU.

The simulator runs kernels as Python, so it accepts code that NVVM would reject; this catches
that. Needs NVVM/NVRTC (a CUDA toolkit, or pip's nvidia-cuda-nvcc-cu12 and
nvidia-cuda-nvrtc-cu12 on LD_LIBRARY_PATH), and must run WITHOUT NUMBA_ENABLE_CUDASIM:

    python tests/gpu/ptx_check.py [--cc 9.0]

Not a pytest file: CI machines have no NVVM. Prints one line per kernel and exits 1 on failure.
"""
import os
import sys

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    sys.exit("ptx_check: unset NUMBA_ENABLE_CUDASIM (it checks the real compiler)")

from numba import boolean, cuda, float32, float64, int64  # noqa: E402

from fastbp.kernels.cuda import gemm, reduce, rows, updates  # noqa: E402
from fastbp.kernels.cuda import fused, network  # noqa: E402


def sigs(ft):
    M2, M1, I1 = ft[:, ::1], ft[::1], int64[::1]
    F1 = float64[::1]
    out = []
    for ta in (False, True):
        for tb in (False, True):
            for epi in (gemm.EPI_STORE, gemm.EPI_BIAS_ACT, gemm.EPI_DGRAD):
                k = gemm._make(ta, tb, epi, 16, 4, ft)
                out.append((f"gemm ta={ta} tb={tb} epi={epi}", k,
                            (M2, M2, M1, M2, M2, int64, int64, int64, int64, M2, M2)))
    out += [
        ("softmax_rows", rows.softmax_rows_kernel, (M2, M2, int64)),
        ("row_loss", rows.row_loss_kernel, (M2, M2, M2, int64, int64, F1)),
        ("delta_elems", rows.delta_elems_kernel,
         (M2, M2, M2, int64, int64, int64, float64, M2)),
        ("delta_softmax_mse", rows.delta_softmax_mse_kernel, (M2, int64, M2)),
        ("col_partials", reduce.col_partials_kernel, (M2, int64, float64[:, ::1])),
        ("sum_partials", reduce.sum_partials_kernel, (float64[:, ::1], M1)),
        ("block_sum", reduce._make_sum(256), (F1, int64, F1, int64)),
        ("sgd", updates.sgd_kernel,
         (M1, M1, M1, float64, float64, boolean, float64, float64, int64, F1)),
        ("adam", updates.adam_kernel,
         (M1, M1, M1, M1, int64, float64, float64, float64, float64, float64, float64,
          boolean, int64, F1)),
        ("gather", network.gather_kernel, (M2, M2, I1, int64, int64, M2, M2)),
        ("fused_train", fused.fused_train_kernel,
         (M2, M2, I1, int64, int64, int64, I1, I1, int64, M1, M1, M1, M1, int64, float64,
          float64, boolean, float64, float64, float64, float64, float64, boolean, int64, int64,
          M1, M1, M1, M1, M2, F1, F1)),
    ]
    return out


def main():
    cc = (9, 0)
    if "--cc" in sys.argv:
        cc = tuple(int(x) for x in sys.argv[sys.argv.index("--cc") + 1].split("."))
    # Device functions ask the current device for its compute capability; without a driver
    # there is none, so answer with the target's.
    import numba.cuda.dispatcher as _disp

    class _Dev:
        compute_capability = cc
    _disp.get_current_device = lambda: _Dev()
    failed = 0
    for ft in (float32, float64):
        for name, kern, sig in sigs(ft):
            fn = getattr(kern, "py_func", kern)
            try:
                ptx, _ = cuda.compile_ptx(fn, sig, cc=cc)
                print(f"ok   {ft} {name}: {len(ptx)} chars of PTX")
            except Exception as exc:  # report every kernel, then fail
                failed += 1
                print(f"FAIL {ft} {name}: {type(exc).__name__}: {str(exc)[:2000]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

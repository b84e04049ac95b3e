"""The thread's floating-point mode: denormals flushed to zero (x86 MXCSR's FTZ and DAZ bits).

Arithmetic on denormal numbers (magnitudes below 1.2e-38 in float32, 2.2e-308 in float64)
takes a microcode assist on x86 CPUs: measured on an Intel Xeon (Ice Lake) here, a float32
32x64x128 product with denormal inputs took 694 us instead of 5.3 (134x), and a training
step whose activations or deltas underflow slows down as much. JAX (XLA) computes with
denormals flushed on the CPU; NumPy, OpenBLAS and PyTorch do not. fastbp's CPU engine flushes
them for the duration of each compiled call (``fastbp.set_flush_denormals`` turns that off):
FTZ writes a denormal result as zero, DAZ reads a denormal input as zero.

The mode is per thread. A parallel function reads the caller's mode (``fp_mode``) before its
``prange`` and each task adopts it (``fp_adopt``) and restores its own before it ends, so
Numba's worker threads compute exactly as the calling thread does and are left as they were
(without it, the columns a worker computes would be IEEE while the caller's were flushed).

``fp_adopt`` changes only the two mode bits: the sticky exception flags and the rounding
mode stay as they are. On other processors these are no-ops (mode 0).
"""
import platform

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
FLUSH = 0x8040

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
_I32 = ir.IntType(32)

if _X86:
    # the inline assembly below is parsed when the module is emitted; Numba initialises the
    # native target and its printer but not its parser (without it LLVM aborts the process)
    llvm.initialize_native_asmparser()


def _csr_asm(builder, text, slot):
    """``text`` (one instruction on the memory at ``slot``) as inline assembly with side
    effects and a memory clobber: LLVM then neither drops, merges nor reorders the reads and
    writes of the register, whose value changes between them without LLVM seeing it."""
    builder.asm(ir.FunctionType(ir.VoidType(), [slot.type]), text, "r,~{memory}", [slot],
                side_effect=True)


@intrinsic
def _read_csr(typingctx):
    """The calling thread's MXCSR (0 where there is none)."""
    def codegen(context, builder, sig, args):
        if not _X86:
            return context.get_constant(types.int64, 0)
        slot = cgutils.alloca_once(builder, _I32)
        _csr_asm(builder, "stmxcsr ($0)", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))
    return types.int64(), codegen


@intrinsic
def _write_csr(typingctx, value):
    """Set the calling thread's MXCSR (nothing where there is none)."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        if _X86:
            slot = cgutils.alloca_once(builder, _I32)
            v = context.cast(builder, args[0], sig.args[0], types.int64)
            builder.store(builder.trunc(v, _I32), slot)
            _csr_asm(builder, "ldmxcsr ($0)", slot)
        return context.get_dummy_value()
    return types.void(value), codegen


@njit(cache=True, nogil=True, inline='always')
def fp_mode():
    """The calling thread's denormal mode: ``FLUSH`` or 0 (or a part: FTZ or DAZ alone).

    Returns
    -------
    int
        The FTZ and DAZ bits of the thread's MXCSR.
    """
    return _read_csr() & FLUSH


@njit(cache=True, nogil=True, inline='always')
def fp_adopt(mode):
    """Give the calling thread the denormal mode ``mode`` (``FLUSH``, 0, or a value this
    returned); return its previous mode, to pass back here when done.

    Parameters
    ----------
    mode : int
        Its FTZ and DAZ bits are copied; every other bit is ignored.

    Returns
    -------
    int
        The thread's mode before the call.
    """
    csr = _read_csr()
    if (csr & FLUSH) != (mode & FLUSH):
        _write_csr((csr & ~FLUSH) | (mode & FLUSH))
    return csr & FLUSH


@njit(cache=True, nogil=True)
def set_thread_mode(mode):
    """``fp_adopt`` for callers outside compiled code (the engine, the tests)."""
    return fp_adopt(mode)

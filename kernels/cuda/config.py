"""Launch configuration of the CUDA kernels. Read at every launch, so tests (and users) can
change these module attributes at run time; kernels specialised on a value (shared-memory
shapes) are compiled once per distinct value.

Tests shrink everything so that even tiny inputs span several blocks and every grid-stride
loop runs more than one iteration.
"""
# 1-D elementwise / row kernels: threads per block, and the most blocks a grid-stride launch
# uses (beyond that the threads loop).
THREADS_PER_BLOCK = 256
MAX_BLOCKS = 4096

# Tiled GEMM: TILE x TILE threads per block, each computing MICRO x MICRO outputs, so a block
# covers a (TILE*MICRO) x (TILE*MICRO) output tile and steps through K by TILE.
TILE = 16
MICRO = 4

# Bias gradients: rows are split into this many chunks whose column partial sums are then
# added in a fixed order (deterministic, no float atomics).
BIAS_SPLIT = 32

# Fused single-block training path: used when every layer is at most this wide and the batch
# has at most FUSED_MAX_ROWS rows; the whole chunk of minibatches runs in one launch of one
# block of FUSED_THREADS threads. Set FUSED = False to force the layer-by-layer path.
FUSED = True
FUSED_MAX_WIDTH = 128
FUSED_MAX_ROWS = 256
FUSED_THREADS = 256


def grid_1d(n):
    """(blocks, threads) for a grid-stride launch over n items."""
    tpb = THREADS_PER_BLOCK
    return max(1, min(MAX_BLOCKS, (n + tpb - 1) // tpb)), tpb

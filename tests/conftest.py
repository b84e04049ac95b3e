"""Test session setup.

Without a real NVIDIA GPU, the GPU tests run on Numba's CUDA simulator: the variable must be
set before numba is first imported, which is why it lives here (pytest loads this file first).
"""
import ctypes.util
import os


def _has_real_gpu():
    return os.path.exists("/dev/nvidia0") and ctypes.util.find_library("cuda") is not None


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _has_real_gpu():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

# No compile-helper processes (fastbp/_compile_helper.py) during the suite: its two workers
# already keep both cores busy compiling. tests/test_compile_helper.py turns it on where tested.
os.environ.setdefault("FASTBP_COMPILE_HELPER", "0")

import pytest  # noqa: E402  (after the simulator switch, which must precede any numba import)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``--dist loadgroup`` (README's test command) honour ``xdist_group`` marks under
    pytest 9.

    pytest-xdist groups a worker's tests by a ``@group`` suffix it appends to each marked test's
    id, but its 3.8 release writes the suffix to ``item._nodeid``, which pytest 9 no longer
    reads (a node's id is its structured ``_id``). Every group was then spread over both
    workers, each compiling the group's shared kernels again. Here the suffix goes into the
    id itself, unless xdist already put it there (pytest 8 and older).
    ``tests/test_test_command.py`` checks that a group runs on one worker.
    """
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers only
        return
    try:
        from _pytest.nodeid import NodeId  # pytest 9
    except ImportError:
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if not names:
            continue
        suffix = "@" + "_".join(names)
        if not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)

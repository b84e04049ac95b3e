"""The engine's arrays start on cache lines (fastbp/_aligned.py), and stay usable as before."""
import numpy as np
import pytest

from fastbp import Network
from fastbp._aligned import aligned_empty, aligned_zeros


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [0, 1, 7, 16, 1000, (3, 5), (2, 9611)])
def test_aligned_empty_shape_dtype_alignment(shape, dtype):
    for _ in range(5):  # several allocations: NumPy's own alignment varies
        a = aligned_empty(shape, dtype)
        assert a.shape == (shape if isinstance(shape, tuple) else (shape,))
        assert a.dtype == np.dtype(dtype)
        assert a.flags.c_contiguous and a.flags.writeable
        if a.size:  # (an empty array's address means nothing)
            assert a.ctypes.data % 64 == 0
        a[...] = 1  # the whole view is writable memory of its own
        assert a.sum() == a.size


def test_aligned_zeros_is_zeros_on_a_line():
    for _ in range(5):
        a = aligned_zeros((3, 37), np.float32)
        assert a.ctypes.data % 64 == 0 and a.shape == (3, 37) and a.dtype == np.float32
        assert not a.any()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_estimator_parameters_and_state_are_aligned():
    from fastbp.sklearn import MLPClassifier
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 6))
    y = rng.integers(0, 3, 80)
    for solver, rows in (("sgd", 1), ("adam", 2)):
        clf = MLPClassifier(hidden_layer_sizes=(9,), solver=solver, max_iter=3,
                            random_state=0).fit(X, y)
        assert clf._flat.ctypes.data % 64 == 0  # the vector the kernels trained in place
        opt = clf._new_optimizer(clf._flat.shape[0])
        assert opt["state"].shape == (rows, clf._flat.shape[0])
        assert opt["state"].ctypes.data % 64 == 0 and not opt["state"].any()


def test_engine_arrays_are_aligned_and_fit_matches_numpy_reference():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    net = Network([8, 16, 3], seed=1)
    net.fit(X, y, epochs=1, batch_size=16, optimizer="adam")
    eng = net._engine
    assert eng.params.ctypes.data % 64 == 0
    assert eng._grads.ctypes.data % 64 == 0
    assert net._opt_state.ctypes.data % 64 == 0
    for buf in eng._fit_ws:
        assert buf.ctypes.data % 64 == 0
    # the parameters are still the network's own contiguous vector: set/get round-trips
    before = eng.get_params()
    eng.set_params(before * 2)
    np.testing.assert_array_equal(eng.params, before * 2)
    assert eng.params.flags.c_contiguous

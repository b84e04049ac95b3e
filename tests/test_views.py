"""Uncounted views (kernels/cpu/views.py) and the drivers' own views built on them: the same
elements as NumPy's views, writable through, and with no reference left behind."""
import sys

import numpy as np
import pytest
from numba import njit

from fastbp.kernels.cpu import network as K
from fastbp.kernels.cpu.views import borrowed_1d, borrowed_2d, borrowed_flat


@njit
def _flat_then_write(A, v):
    f = borrowed_flat(A)
    f[f.shape[0] - 1] = v
    return f.shape[0], f.sum()


@njit
def _write_2d(buf, off, r, c):
    V = borrowed_2d(buf, off, r, c)
    for i in range(r):
        for j in range(c):
            V[i, j] = -(i * c + j) - 1


@njit
def _sum_1d(buf, off, n):
    return borrowed_1d(buf, off, n).sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_borrowed_views_match_numpy_views(dtype):
    A = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    n, total = _flat_then_write(A, 100)
    assert n == 24 and A[-1, -1, -1] == 100 and total == A.sum()
    buf = np.arange(40, dtype=dtype)
    want = buf.copy()
    want[7:7 + 15].reshape(3, 5)[...] = -np.arange(1, 16).reshape(3, 5)
    _write_2d(buf, 7, 3, 5)
    np.testing.assert_array_equal(buf, want)  # nothing outside the view was touched
    assert _sum_1d(buf, 30, 10) == buf[30:40].sum()


def test_borrowed_views_leave_no_reference():
    buf = np.zeros(64)
    before = sys.getrefcount(buf)
    for _ in range(1000):
        _write_2d(buf, 0, 4, 4)
        _sum_1d(buf, 3, 9)
    assert sys.getrefcount(buf) == before


def test_borrowed_views_reject_non_contiguous():
    with pytest.raises(Exception, match="borrowed_2d|No implementation|non-precise"):
        _write_2d(np.zeros(64)[::2], 0, 2, 2)


# the drivers' views must not reach Python (they have no owner): copies come back instead
@njit
def _w(params, sizes, l):
    return K._w(params, sizes, l).copy()


@njit
def _b(params, sizes, l):
    return K._b(params, sizes, l).copy()


@njit
def _act(A_buf, sizes, rows, l, m):
    return K._act(A_buf, sizes, rows, l, m).copy()


@njit
def _z(Z_buf, sizes, rows, l, m):
    return K._z(Z_buf, sizes, rows, l, m).copy()


@njit
def _delta(D_buf, i, m, n):
    return K._delta(D_buf, i, m, n).copy()


@pytest.mark.parametrize("rows,m", [(5, 5), (5, 3)])
def test_driver_views_match_public_views(rows, m):
    sizes = np.array([6, 4, 3, 2], dtype=np.int64)
    params = np.arange(K.n_weights(sizes) + sizes[1:].sum(), dtype=np.float32)
    A_buf = np.arange(rows * sizes.sum(), dtype=np.float32)
    Z_buf = np.arange(rows * sizes[1:].sum(), dtype=np.float32)
    D_buf = np.arange(2 * rows * 4, dtype=np.float32).reshape(2, rows * 4)
    for l in range(3):
        np.testing.assert_array_equal(_w(params, sizes, l), K.weight_view(params, sizes, l))
        np.testing.assert_array_equal(_b(params, sizes, l), K.bias_view(params, sizes, l))
    for l in range(4):
        np.testing.assert_array_equal(_act(A_buf, sizes, rows, l, m),
                                      K.act_view(A_buf, sizes, rows, l, m))
    for l in range(1, 4):
        np.testing.assert_array_equal(_z(Z_buf, sizes, rows, l, m),
                                      K.z_view(Z_buf, sizes, rows, l, m))
    for i in range(2):
        np.testing.assert_array_equal(_delta(D_buf, i, m, 3),
                                      D_buf[i, :m * 3].reshape(m, 3))

"""The README's kernel-reuse example runs as written and matches a NumPy training step."""
import os

import numpy as np

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _example_source():
    text = open(README, encoding="utf-8").read()
    section = text.split("## Reusing the kernels in your own Numba code")[1]
    return section.split("```python")[1].split("```")[0]


def test_readme_kernel_example_matches_numpy_step():
    ns = {}
    exec(_example_source(), ns)
    rng = np.random.default_rng(0)
    n, d, h, k = 9, 4, 6, 3
    X, Y = rng.standard_normal((n, d)), np.eye(k)[rng.integers(0, k, n)]
    W1, b1, W2, b2 = (rng.standard_normal(s) * 0.5 for s in [(d, h), (h,), (h, k), (k,)])
    ref = [W1.copy(), b1.copy(), W2.copy(), b2.copy()]
    bufs = [np.empty(s) for s in [(n, h), (n, h), (n, k), (n, k), (n, k), (n, h), (d, h), (h,),
                                  (h, k), (k,)]]
    loss = ns["train_step"](X, Y, W1, b1, W2, b2, 0.1, *bufs)
    A1 = np.tanh(X @ ref[0] + ref[1])
    Z2 = A1 @ ref[2] + ref[3]
    A2 = np.exp(Z2 - Z2.max(1, keepdims=True))
    A2 /= A2.sum(1, keepdims=True)
    assert np.isclose(loss, -(Y * np.log(A2)).sum() / n, rtol=1e-12)
    D2 = (A2 - Y) / n
    D1 = (D2 @ ref[2].T) * (1 - A1 ** 2)
    want = [ref[0] - 0.1 * X.T @ D1, ref[1] - 0.1 * D1.sum(0), ref[2] - 0.1 * A1.T @ D2,
            ref[3] - 0.1 * D2.sum(0)]
    for got, w in zip([W1, b1, W2, b2], want):
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15)

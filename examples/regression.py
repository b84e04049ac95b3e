"""Regression two ways: fastbp.Network with mse, and the scikit-learn-style MLPRegressor.

    python examples/regression.py [--epochs 300]

Fits y = sin(3 x0) + x1^2 (two features, plus noise) and a two-output variant.
"""
import argparse

import numpy as np

import fastbp


def make_data(n, rng):
    X = rng.uniform(-1, 1, size=(n, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2 + rng.normal(0, 0.05, n)
    return X.astype(np.float32), y.astype(np.float32)


def r2(y, pred):
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return 1 - ((y - pred) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    X, y = make_data(2000, rng)
    X_test, y_test = make_data(500, rng)

    # 1. The Network API: identity output + mean squared error.
    net = fastbp.Network([2, 64, 64, 1], activation="tanh", output="identity", loss="mse",
                         seed=0)
    hist = net.fit(X, y, epochs=args.epochs, batch_size=64, optimizer=fastbp.Adam(lr=3e-3))
    score_net = r2(y_test, net.predict(X_test))
    print(f"Network: final loss {hist['loss'][-1]:.5f}, test R^2 {score_net:.4f}")

    # 2. The scikit-learn estimator (needs scikit-learn), multi-output: y and -y/2.
    try:
        from fastbp.sklearn import MLPRegressor
    except ImportError:
        print("scikit-learn is not installed: skipping MLPRegressor "
              "(pip install 'fastbp[sklearn]')")
        return score_net, None
    Y2 = np.column_stack([y, -y / 2])
    reg = MLPRegressor(hidden_layer_sizes=(64, 64), activation="tanh",
                       learning_rate_init=3e-3, max_iter=args.epochs, random_state=0)
    reg.fit(X, Y2)
    score_est = reg.score(X_test, np.column_stack([y_test, -y_test / 2]))
    print(f"MLPRegressor (2 outputs): {reg.n_iter_} epochs, loss {reg.loss_:.5f}, "
          f"test R^2 {score_est:.4f}")
    return score_net, score_est


if __name__ == "__main__":
    main()

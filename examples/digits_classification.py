"""Classify handwritten digits with fastbp.Network: Adam, validation data, early stopping.

    python examples/digits_classification.py [--epochs 40] [--plot curves.png]

Uses the digits set bundled with fastbp (no download, no scikit-learn); --plot needs
matplotlib (pip install 'fastbp[plot]').
"""
import argparse

import numpy as np
import fastbp
from fastbp.data import load_digits, train_test_split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--plot", default=None, help="write training curves to this image")
    args = parser.parse_args(argv)

    X, y = load_digits()
    X = (X / 16.0).astype(np.float32)          # pixels 0..16 -> 0..1
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)
    net = fastbp.Network([64, 128, 10], activation="relu", output="softmax", seed=0)
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=32,
                      optimizer=fastbp.Adam(lr=1e-3, schedule=fastbp.CosineLR()),
                      validation_data=(X_test, y_test),
                      early_stopping=fastbp.EarlyStopping(patience=8))
    last = history.epochs[-1]
    print(f"{len(history)} epochs, final train loss {last['loss']:.4f}, "
          f"validation loss {last['val_loss']:.4f}, "
          f"{np.mean([r['samples_per_s'] for r in history.epochs]):,.0f} samples/s")
    accuracy = float((net.predict(X_test) == y_test).mean())
    print(f"test accuracy {accuracy:.4f}")
    if args.plot:
        from fastbp.plot import plot_history
        plot_history(history, args.plot, title="digits, 64-128-10 MLP")
        print(f"wrote {args.plot}")
    return accuracy


if __name__ == "__main__":
    main()

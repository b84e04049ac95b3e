"""fastbp's MLPClassifier inside a scikit-learn Pipeline, tuned by GridSearchCV.

    python examples/sklearn_pipeline.py [--max-iter 60]

fastbp.sklearn.MLPClassifier takes the same parameters as sklearn.neural_network's, so it
drops into any scikit-learn workflow (Pipeline, GridSearchCV, cross_val_score, pickle).
"""
import argparse
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fastbp.sklearn import MLPClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=60)
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    pipe = Pipeline([
        ("scale", StandardScaler()),
        ("mlp", MLPClassifier(max_iter=args.max_iter, random_state=0, dtype="float32")),
    ])
    grid = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(32,), (128,)],
                               "mlp__alpha": [1e-4, 1e-2]}, cv=3, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short max_iter on purpose
        grid.fit(X_train, y_train)
    print("best parameters:", grid.best_params_)
    print(f"cross-validated accuracy {grid.best_score_:.4f}")
    accuracy = grid.score(X_test, y_test)
    print(f"test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()

"""The command line: training runs, save/load, info; every error is one line on stderr, exit 2,
never a traceback; and a fuzzed CSV reader that only ever raises ValueError."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp import cli
from fastbp import data as D


def run_cli(*args, cwd=None):
    """``python -m fastbp ARGS`` in a subprocess: (exit status, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-m", "fastbp", *map(str, args)], capture_output=True,
                       text=True, timeout=300, cwd=cwd)
    return r.returncode, r.stdout, r.stderr


def assert_clean_error(rc, err, pattern=None):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastbp"), err
    assert "error:" in lines[0]
    if pattern:
        assert pattern in lines[0], lines[0]


# --- successful runs (subprocess, the real entry point) --------------------------------------------
def test_train_xor_save_then_load(tmp_path):
    model = tmp_path / "xor.npz"
    rc, out, err = run_cli("train", "--dataset", "xor", "--layers", "8", "--epochs", "15",
                           "--optimizer", "adam", "--lr", "0.05", "--quiet", "--save", model)
    assert rc == 0, err
    assert "test accuracy" in out and f"saved model to {model}" in out
    acc = float(out.split("test accuracy")[1].split()[0])
    assert acc > 0.9
    net = fastbp.load(model)
    assert net.layer_sizes == [2, 8, 2] and net.epochs_done == 15
    # the CLI standardizes features: the loaded net still separates the standardized corners
    X, y = D.xor(400, seed=0)
    Xs = D.Standardizer().fit(X).transform(X)
    assert net.accuracy(Xs, y) > 0.9


def test_train_sine_regression():
    rc, out, err = run_cli("train", "--dataset", "sine", "--layers", "16,16", "--activation",
                           "tanh", "--optimizer", "adam", "--lr", "0.01", "--epochs", "20",
                           "--quiet")
    assert rc == 0, err
    assert "test RMSE" in out
    assert float(out.split("test RMSE")[1].split()[0]) < 0.3


def test_info():
    rc, out, err = run_cli("info")
    assert rc == 0, err
    assert "numba threading layer" in out and "fastbp" in out


def test_train_csv_with_text_labels(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    names = np.where(X[:, 0] > 0, "pos", "neg")
    csv = tmp_path / "d.csv"
    csv.write_text("f1,kind,f2\n" + "".join(f"{a},{k},{b}\n" for (a, b), k in zip(X, names)))
    rc, out, err = run_cli("train", "--data", csv, "--target", "kind", "--layers", "4",
                           "--epochs", "5", "--quiet")
    assert rc == 0, err
    assert "d.csv, 48 train / 12 test" in out


# --- errors (a few through the real entry point, the rest in-process) ------------------------------
def test_subprocess_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,oops,x\n2,3,y\n")
    cases = [
        (["train", "--data", tmp_path / "missing.csv", "--target", "y"], "data file not found"),
        (["train", "--data", bad, "--target", "label"], "line 2, column 'b': not a number: 'oops'"),
        (["train", "--layers", "128,x"], "--layers takes comma-separated integers"),
        (["train", "--epochs", "-3"], "--epochs must be >= 0; got -3"),
    ]
    for args, pattern in cases:
        rc, out, err = run_cli(*args)
        assert_clean_error(rc, err, pattern)


def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(p)


ERRORS = [
    ("missing file", lambda t: ["--data", str(t / "nope.csv"), "--target", "y"], "data file not found"),
    ("missing npz", lambda t: ["--data", str(t / "nope.npz")], "data file not found"),
    ("folder as data", lambda t: ["--data", str(t), "--target", "y"], "--data must be a .csv or .npz"),
    ("bad extension", lambda t: ["--data", _write(t, "d.json", "{}")], "--data must be a .csv or .npz file"),
    ("csv without target", lambda t: ["--data", _write(t, "d.csv", "a,b\n1,2\n")], "--target is required"),
    ("unknown column", lambda t: ["--data", _write(t, "d.csv", "a,b\n1,2\n3,4\n"), "--target", "c"], "no column named 'c'; columns are ['a', 'b']"),
    ("non-numeric cell", lambda t: ["--data", _write(t, "d.csv", "a,b,y\n1,2,0\n3,x,1\n"), "--target", "y"], "line 3, column 'b': not a number: 'x'"),
    ("empty cell", lambda t: ["--data", _write(t, "d.csv", "a,b,y\n1,,0\n3,4,1\n"), "--target", "y"], "line 2, column 'b': not a number: ''"),
    ("short row", lambda t: ["--data", _write(t, "d.csv", "a,b,y\n1,2\n"), "--target", "y"], "line 2: 2 fields, expected 3"),
    ("header only", lambda t: ["--data", _write(t, "d.csv", "a,b,y\n"), "--target", "y"], "needs a header row and at least one data row"),
    ("empty file", lambda t: ["--data", _write(t, "d.csv", ""), "--target", "y"], "needs a header row"),
    ("binary csv", lambda t: ["--data", _write(t, "d.csv", b"\xff\xfe\x00\x01garbage"), "--target", "y"], "not a UTF-8 text CSV file"),
    ("NUL byte", lambda t: ["--data", _write(t, "d.csv", "a,y\n1\x00,0\n"), "--target", "y"], "line 2, column 'a': not a number"),
    ("inf feature", lambda t: ["--data", _write(t, "d.csv", "a,y\n1e999,0\n2,1\n"), "--target", "y"], "features contain NaN or Inf"),
    ("only target column", lambda t: ["--data", _write(t, "d.csv", "y\n1\n2\n"), "--target", "y"], "no feature columns"),
    ("too few rows", lambda t: ["--data", _write(t, "d.csv", "a,y\n1,0\n"), "--target", "y"], "leaves an empty train or test set"),
    ("regress text target", lambda t: ["--data", _write(t, "d.csv", "a,y\n1,u\n2,v\n3,u\n4,v\n5,u\n"), "--target", "y", "--task", "regress"], "regression needs a numeric target"),
    ("bad npz", lambda t: ["--data", _write(t, "d.npz", b"PK\x03\x04broken")], "not a readable .npz file"),
    ("npz without y", lambda t: ["--data", _npz(t, X=np.zeros((5, 2)))], "needs arrays 'X' and 'y'"),
    ("target without data", lambda t: ["--target", "y"], "--target goes with --data"),
    ("bad layers", lambda t: ["--layers", "3,x"], "--layers takes comma-separated integers"),
    ("zero layer", lambda t: ["--layers", "0"], "--layers sizes must be >= 1"),
    ("negative epochs", lambda t: ["--epochs", "-1"], "--epochs must be >= 0; got -1"),
    ("non-integer epochs", lambda t: ["--epochs", "2.5"], "invalid int value: '2.5'"),
    ("zero batch", lambda t: ["--batch-size", "0"], "--batch-size must be >= 1; got 0"),
    ("negative lr", lambda t: ["--lr", "-1"], "--lr must be a positive number"),
    ("nan lr", lambda t: ["--lr", "nan"], "--lr must be a positive number; got nan"),
    ("test size", lambda t: ["--test-size", "1.5"], "--test-size must lie in (0, 1)"),
    ("unknown activation", lambda t: ["--dataset", "xor", "--activation", "swish"], "activation must be one of"),
    ("unknown loss", lambda t: ["--dataset", "xor", "--loss", "hinge"], "loss must be one of"),
    ("loss mismatch", lambda t: ["--dataset", "sine", "--loss", "cross_entropy"], "does not fit output"),
    ("unknown optimizer", lambda t: ["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    ("unknown dataset", lambda t: ["--dataset", "mnist"], "invalid choice: 'mnist'"),
    ("unknown device", lambda t: ["--dataset", "xor", "--device", "tpu"], "device must be 'cpu', 'cuda' or 'cuda:N'"),
    ("bad momentum", lambda t: ["--dataset", "xor", "--momentum", "1.5"], "momentum must be < 1.0"),
    ("save folder missing", lambda t: ["--dataset", "xor", "--save", str(t / "no" / "m.npz")], "--save: folder"),
    ("save onto folder", lambda t: ["--dataset", "xor", "--save", str(t)], "is a folder"),
    ("unknown option", lambda t: ["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


def _npz(t, **arrays):
    p = t / "d.npz"
    np.savez(p, **arrays)
    return str(p)


@pytest.mark.parametrize("make_args,pattern", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_cli_error_is_one_line_exit_2(tmp_path, capfd, make_args, pattern):
    args = ["train", *make_args(tmp_path), "--epochs", "1", "--quiet"] \
        if "--epochs" not in make_args(tmp_path) else ["train", *make_args(tmp_path), "--quiet"]
    try:
        rc = cli.main(args)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    err = capfd.readouterr().err
    assert_clean_error(rc, err, pattern)


def test_no_command_and_unknown_command(capfd):
    for args in ([], ["bogus"]):
        with pytest.raises(SystemExit) as info:
            cli.main(args)
        assert info.value.code == 2
        assert_clean_error(2, capfd.readouterr().err)


def test_unexpected_exception_is_still_one_line(monkeypatch, capfd):
    monkeypatch.setattr(cli, "train", lambda args: {}["boom"])
    monkeypatch.delenv("FASTBP_DEBUG", raising=False)
    rc = cli.main(["train", "--quiet"])
    err = capfd.readouterr().err
    assert rc == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "internal error: KeyError" in err


# --- fuzzing the CSV reader ------------------------------------------------------------------------
_ALPHABET = list(b'0123456789,.-+e\n\r"\' abcnaifNAI\t;\x00\xff')


def _base_csv(rng):
    rows = "".join(f"{rng.normal():.3f},{rng.normal():.3f},{i % 7},{'xyz'[i % 3]}\n"
                   for i in range(30))
    return ("a,b,c,label\n" + rows).encode()


def _mangle(raw, rng):
    kind = int(rng.integers(4))
    if kind == 0:
        return rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
    if kind == 1:
        return bytes(rng.choice(_ALPHABET, int(rng.integers(0, 300))).astype(np.uint8))
    b = bytearray(raw)
    for _ in range(int(rng.integers(1, 6))):
        j, op = int(rng.integers(len(b) or 1)), int(rng.integers(3))
        if op == 0 and b:
            b[j] = int(rng.choice(_ALPHABET))
        elif op == 1:
            del b[j:j + int(rng.integers(1, 10))]
        else:
            b[j:j] = bytes(rng.choice(_ALPHABET, int(rng.integers(1, 5))).astype(np.uint8))
    return bytes(b)


def test_fuzz_read_csv_only_value_error(tmp_path):
    rng = np.random.default_rng(2024)
    raw = _base_csv(rng)
    path = str(tmp_path / "f.csv")
    ok = 0
    for _ in range(1500):
        with open(path, "wb") as f:
            f.write(_mangle(raw, rng))
        try:
            X, y, names = D.read_csv(path, "label")
        except ValueError as exc:
            assert str(exc).startswith(path) and len(str(exc).splitlines()) == 1
            continue
        ok += 1
        assert X.ndim == 2 and X.shape == (len(y), len(names)) and np.isfinite(X).all()
        assert X.dtype == np.float64
    assert ok > 10  # some mangled files stay valid; they are read correctly


def test_fuzz_cli_on_mangled_csv_exits_cleanly(tmp_path, capfd):
    rng = np.random.default_rng(7)
    raw = _base_csv(rng)
    path = str(tmp_path / "f.csv")
    codes = set()
    for i in range(120):
        b = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):  # light damage: many files still train
            j, op = int(rng.integers(len(b))), int(rng.integers(3))
            if op == 0:
                b[j] = int(rng.choice(_ALPHABET))
            elif op == 1:
                del b[j:j + int(rng.integers(1, 10))]
            else:
                b[j:j] = bytes(rng.choice(_ALPHABET, int(rng.integers(1, 5))).astype(np.uint8))
        with open(path, "wb") as f:
            f.write(bytes(b))
        rc = cli.main(["train", "--data", path, "--target", "label", "--epochs", "1",
                       "--layers", "4", "--quiet"])
        err = capfd.readouterr().err
        codes.add(rc)
        assert rc in (0, 2), err
        if rc == 2:
            assert_clean_error(rc, err)
    assert codes == {0, 2}

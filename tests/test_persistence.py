"""Persistence: versioned format, load of bad files, fuzzed files, atomic save, no pickle,
checkpoints, and interrupted-then-resumed runs."""
import copy
import json
import os
import pickle
import signal
import zipfile

import numpy as np
import pytest

import fastbp
from fastbp import data as D
from fastbp import io as fio
from fastbp import training


def _trained(seed=0, opt="adam", epochs=1):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((40, 3)), np.arange(40) % 2
    net = fastbp.Network([3, 4, 2], seed=seed)
    net.fit(X, y, epochs=epochs, batch_size=8, optimizer=opt)
    return net, X


def _same(a, b):
    np.testing.assert_array_equal(a.get_flat_parameters(), b.get_flat_parameters())
    assert a.epochs_done == b.epochs_done
    if a._opt_state is not None:
        np.testing.assert_array_equal(a._opt_state, b._opt_state)
        assert int(a._opt_step[0]) == int(b._opt_step[0])


# --- format --------------------------------------------------------------------------------------
def test_file_is_plain_zip_with_versioned_json_header(tmp_path):
    net, _ = _trained()
    path = tmp_path / "m.npz"
    net.save(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["header.npy", "opt_state.npy", "params.npy"]
    with np.load(path, allow_pickle=False) as d:
        header = json.loads(str(d["header"][()]))
    assert header["format"] == "fastbp-network"
    assert header["format_version"] == fio.FORMAT_VERSION == 1
    _same(net, fastbp.load(path))


def _write(path, header, arrays, raw_header=None):
    hdr = raw_header if raw_header is not None else np.array(json.dumps(header))
    np.savez(path, header=hdr, **arrays)


def _edit(header, **changes):
    h = json.loads(json.dumps(header))
    for k, v in changes.items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    return h


# Each bad file is made from a real network's saved state ``s`` (the ``saved_state`` fixture):
# trained when a test first needs it, not while the module is collected (every test process
# collected it, and each compiled and ran a fit for that).
BAD = [
    ("empty file", lambda p, s: open(p, "wb").close(), r"not an \.npz \(zip\) archive \(empty"),
    ("text file", lambda p, s: open(p, "w").write("a,b\n1,2\n"), r"not an \.npz \(zip\) archive"),
    ("npy file", lambda p, s: np.save(open(p, "wb"), np.arange(3)), r"not an \.npz"),
    ("foreign npz", lambda p, s: np.savez(p, X=np.arange(3)), r"no header entry: not written by fastbp"),
    ("foreign zip", lambda p, s: zipfile.ZipFile(p, "w").writestr("a.txt", "hi"), r"no header entry"),
    ("foreign header", lambda p, s: _write(p, {"format": "other"}, s.A), r"not written by fastbp"),
    ("header not json", lambda p, s: _write(p, None, s.A, np.array("{oops")), r"not a readable fastbp network file"),
    ("header json list", lambda p, s: _write(p, None, s.A, np.array("[1, 2]")), r"format tag missing"),
    ("header numeric", lambda p, s: _write(p, None, s.A, np.arange(3)), r"header must be a text scalar"),
    ("object array (pickle)", lambda p, s: np.savez(p, header=np.array([{"a": 1}], dtype=object), params=s.P), r"allow_pickle=False|pickled"),
    ("future version", lambda p, s: _write(p, _edit(s.H, format_version=2), s.A), r"format_version 2 is newer than this fastbp reads \(1\); upgrade"),
    ("far future version, other layout", lambda p, s: _write(p, _edit(s.H, format_version=99), {"weights_v99": s.P}), r"format_version 99 is newer"),
    ("version missing", lambda p, s: _write(p, _edit(s.H, format_version=None), s.A), r"bad format_version None"),
    ("version string", lambda p, s: _write(p, _edit(s.H, format_version="1"), s.A), r"bad format_version '1'"),
    ("version bool", lambda p, s: _write(p, _edit(s.H, format_version=True), s.A), r"bad format_version True"),
    ("version 0", lambda p, s: _write(p, _edit(s.H, format_version=0), s.A), r"bad format_version 0"),
    ("layer_sizes string", lambda p, s: _write(p, _edit(s.H, layer_sizes="3,4,2"), s.A), r"bad layer_sizes"),
    ("layer_sizes zero", lambda p, s: _write(p, _edit(s.H, layer_sizes=[3, 0, 2]), s.A), r"bad layer_sizes"),
    ("layer_sizes huge", lambda p, s: _write(p, _edit(s.H, layer_sizes=[3, 10**6, 10**6, 2], activations=["relu"] * 2), s.A), r"params has shape \(26,\), expected"),
    ("activation unknown", lambda p, s: _write(p, _edit(s.H, activations=["nope"]), s.A), r"bad network description.*activation must be one of"),
    ("dtype unknown", lambda p, s: _write(p, _edit(s.H, dtype="int8"), s.A), r"bad network description.*dtype"),
    ("no params", lambda p, s: _write(p, s.H, {"opt_state": s.S}), r"missing entries"),
    ("params short", lambda p, s: _write(p, s.H, {**s.A, "params": s.P[:-1]}), r"params has shape \(25,\), expected \(26,\)"),
    ("params 2-D", lambda p, s: _write(p, s.H, {**s.A, "params": s.P[None]}), r"params has shape \(1, 26\)"),
    ("params int", lambda p, s: _write(p, s.H, {**s.A, "params": s.P.astype(np.int64)}), r"params must be floats; got dtype int64"),
    ("params strings", lambda p, s: _write(p, s.H, {**s.A, "params": s.P.astype(str)}), r"params must be floats"),
    ("params NaN", lambda p, s: _write(p, s.H, {**s.A, "params": np.full_like(s.P, np.nan)}), r"params contain NaN or Inf"),
    ("params overflow float32", lambda p, s: _write(p, s.H, {**s.A, "params": s.P.astype(np.float64) * 1e300}), r"params contain NaN or Inf"),
    ("epochs_done negative", lambda p, s: _write(p, _edit(s.H, epochs_done=-5), s.A), r"bad epochs_done -5"),
    ("epochs_done string", lambda p, s: _write(p, _edit(s.H, epochs_done="3"), s.A), r"bad epochs_done '3'"),
    ("opt_step negative", lambda p, s: _write(p, _edit(s.H, opt_step=-1), s.A), r"bad opt_step -1"),
    ("rng_state garbage", lambda p, s: _write(p, _edit(s.H, rng_state={"bit_generator": "MT19937"}), s.A), r"bad training state"),
    ("optimizer unknown", lambda p, s: _write(p, _edit(s.H, optimizer={"name": "RMSprop", "lr": 1}), s.A), r"bad training state.*unknown optimizer"),
    ("optimizer bad lr", lambda p, s: _write(p, _edit(s.H, optimizer={**s.opt, "lr": -1}), s.A), r"bad training state.*lr must be > 0"),
    ("optimizer extra field", lambda p, s: _write(p, _edit(s.H, optimizer={**s.opt, "zzz": 1}), s.A), r"bad training state"),
    ("schedule unknown", lambda p, s: _write(p, _edit(s.H, optimizer={**s.opt, "schedule": {"name": "Nope"}}), s.A), r"bad training state"),
    ("opt_state shape", lambda p, s: _write(p, s.H, {**s.A, "opt_state": s.S[:1]}), r"opt_state has shape \(1, 26\), expected \(2, 26\)"),
    ("opt_state NaN", lambda p, s: _write(p, s.H, {**s.A, "opt_state": np.full_like(s.S, np.nan)}), r"opt_state contains NaN or Inf"),
    ("opt_state strings", lambda p, s: _write(p, s.H, {**s.A, "opt_state": s.S.astype(str)}), r"opt_state must be floats"),
]


@pytest.fixture(scope="module")
def saved_state():
    """A trained network's file header ``H`` and arrays ``A`` (``P``: parameters, ``S``:
    optimizer state; ``opt``: the header's optimizer entry), as ``save`` writes them."""
    import types
    net, _ = _trained()
    H, A = fio.network_state(net)
    return types.SimpleNamespace(H=H, A=A, opt=H["optimizer"], P=A["params"], S=A["opt_state"])


@pytest.mark.parametrize("make,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_load_rejects_bad_file_with_clear_value_error(tmp_path, make, pattern, saved_state):
    path = str(tmp_path / "bad.npz")
    make(path, saved_state)
    with pytest.raises(ValueError, match=pattern) as info:
        fastbp.load(path)
    msg = str(info.value)
    assert msg.startswith(path) and "is not a readable fastbp network file" in msg
    assert len(msg.splitlines()) == 1


def test_load_missing_file_and_directory_and_bad_device(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such fastbp network file"):
        fastbp.load(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="not a regular file"):
        fastbp.load(tmp_path)
    net, _ = _trained()
    net.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"^device must be 'cpu', 'cuda' or 'cuda:N'; got 'gpu'"):
        fastbp.load(tmp_path / "m.npz", device="gpu")


def test_load_never_unpickles(tmp_path):
    """A file whose entries are pickles that would run code: load refuses, nothing runs."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    np.savez(path, header=np.array([Evil()], dtype=object),
             params=np.array([Evil()], dtype=object))
    assert not marker.exists()
    with pytest.raises(ValueError, match="not a readable fastbp network file"):
        fastbp.load(path)
    raw = tmp_path / "raw.npz"  # a bare pickle renamed .npz
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="not an .npz"):
        fastbp.load(raw)
    assert not marker.exists()


def _mutations(raw, rng):
    b = bytearray(raw)
    kind = int(rng.integers(5))
    if kind == 0:  # truncation
        return bytes(b[:int(rng.integers(0, len(b)))])
    if kind == 1:  # bit flips
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if kind == 2:  # overwrite a run with random bytes
        k = int(rng.integers(len(b)))
        b[k:k + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        return bytes(b[:len(raw)])
    if kind == 3:  # delete a run
        k = int(rng.integers(len(b)))
        return bytes(b[:k] + b[k + int(rng.integers(1, 64)):])
    k = int(rng.integers(len(b)))  # insert garbage
    return bytes(b[:k] + rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
                 + b[k:])


def test_fuzz_load_corrupted_files(tmp_path):
    """Hundreds of seeded corruptions of a real file: each load either raises ValueError or
    (when the damage hit bytes nothing reads, e.g. a zip timestamp) gives the exact network.
    Never another exception, never a silently different network."""
    net, X = _trained(opt=fastbp.SGD(lr=0.05, momentum=0.9, schedule="cosine"), epochs=2)
    good = tmp_path / "good.npz"
    net.save(good)
    raw = good.read_bytes()
    rng = np.random.default_rng(12345)
    path = tmp_path / "fuzz.npz"
    outcomes = {"ValueError": 0, "identical": 0}
    for _ in range(400):
        path.write_bytes(_mutations(raw, rng))
        try:
            back = fastbp.load(path)
        except ValueError as exc:
            assert str(exc).startswith(str(path))
            outcomes["ValueError"] += 1
            continue
        _same(net, back)  # anything that loads is the original, bit for bit
        np.testing.assert_array_equal(back.forward(X), net.forward(X))
        outcomes["identical"] += 1
    assert outcomes["ValueError"] > 300, outcomes


# --- atomic save -----------------------------------------------------------------------------------
def _leftovers(folder, name):
    return [f for f in os.listdir(folder) if f != name]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_mid_save_keeps_previous_file(tmp_path, monkeypatch, exc):
    old, _ = _trained(seed=1)
    path = tmp_path / "model.npz"
    old.save(path)
    before = path.read_bytes()
    new, _ = _trained(seed=2)
    real_savez = np.savez

    def crashing_savez(f, *args, **kwargs):
        real_savez(f, *args, **kwargs)  # bytes really are written to the temp file...
        f.write(b"partial")
        raise exc                        # ...then the "crash"

    monkeypatch.setattr(np, "savez", crashing_savez)
    with pytest.raises(type(exc)):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before            # previous file whole
    assert _leftovers(tmp_path, "model.npz") == []  # no temp file left
    _same(old, fastbp.load(path))
    new.save(path)  # and a later save works
    _same(new, fastbp.load(path))


def test_crash_at_rename_keeps_previous_file(tmp_path, monkeypatch):
    old, _ = _trained(seed=1)
    path = tmp_path / "model.npz"
    old.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("EIO")))
    with pytest.raises(OSError, match="EIO"):
        _trained(seed=3)[0].save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, "model.npz") == []


def test_save_is_fsynced_then_renamed(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    _trained()[0].save(tmp_path / "m.npz")
    assert calls[:2] == ["fsync", "replace"]


def test_save_into_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cannot save to .*m.npz.*: folder .* does not exist"):
        _trained()[0].save(tmp_path / "no" / "such" / "m.npz")
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        _trained()[0].save(tmp_path)
    assert os.listdir(tmp_path) == []


# --- checkpoints, interrupt, resume ----------------------------------------------------------------
def test_checkpoint_every_k_epochs(tmp_path, monkeypatch):
    X, y = D.spirals(120, seed=0)
    saved = []
    real = fastbp.Network.save
    monkeypatch.setattr(fastbp.Network, "save",
                        lambda self, p, **kw: (saved.append(self.epochs_done), real(self, p, **kw)))
    net = fastbp.Network([2, 8, 3], seed=0)
    net.fit(X, y, epochs=7, batch_size=16, checkpoint=tmp_path / "c.npz", checkpoint_every=3)
    assert saved == [3, 6, 7]
    back = fastbp.load(tmp_path / "c.npz")
    _same(net, back)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test. A process that a non-interactive shell starts
    in the background inherits SIGINT ignored, and fit then (rightly) leaves Ctrl-C alone, so
    these tests would see no KeyboardInterrupt there."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _fake_ctrl_c_after(monkeypatch, net, calls):
    """Deliver a real SIGINT right after the ``calls``-th compiled chunk returns."""
    real = net._engine.run_batches
    count = [0]

    def run_batches(*args):
        out = real(*args)
        count[0] += 1
        if count[0] == calls:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(net._engine, "run_batches", run_batches)


@pytest.mark.parametrize("make_opt", [lambda: fastbp.SGD(lr=0.05, momentum=0.9, schedule="step"),
                                      lambda: fastbp.Adam(lr=0.01, schedule="cosine")])
@pytest.mark.parametrize("calls", [1, 5, 9, 13])  # mid-epoch and at epoch ends (4 chunks/epoch)
def test_ctrl_c_mid_epoch_then_resume_is_bit_identical(monkeypatch, make_opt, calls,
                                                       default_sigint):
    monkeypatch.setattr(training, "CHUNK_SECONDS", 0.0)  # one minibatch per compiled chunk
    X, y = D.spirals(100, seed=3)
    straight = fastbp.Network([2, 10, 3], seed=1)
    straight.fit(X, y, epochs=5, batch_size=32, optimizer=make_opt())
    net = fastbp.Network([2, 10, 3], seed=1)
    _fake_ctrl_c_after(monkeypatch, net, calls)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=5, batch_size=32, optimizer=make_opt())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    # consistent and usable at the last completed minibatch
    assert np.isfinite(net.get_flat_parameters()).all()
    net.predict(X)
    assert int(net._opt_step[0]) in (0, calls) or isinstance(net.optimizer, fastbp.SGD)
    net.fit(X, y, epochs=5, batch_size=32, resume=True)
    _same(straight, net)


def test_ctrl_c_then_checkpoint_resume_is_bit_identical(tmp_path, monkeypatch, default_sigint):
    monkeypatch.setattr(training, "CHUNK_SECONDS", 0.0)
    X, y = D.spirals(100, seed=4)
    straight = fastbp.Network([2, 10, 3], seed=2)
    straight.fit(X, y, epochs=4, batch_size=32, optimizer=fastbp.Adam(lr=0.01))
    net = fastbp.Network([2, 10, 3], seed=2)
    _fake_ctrl_c_after(monkeypatch, net, 6)  # in the second epoch
    ckpt = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=4, batch_size=32, optimizer=fastbp.Adam(lr=0.01), checkpoint=ckpt)
    resumed = fastbp.load(ckpt)
    assert resumed.epochs_done == 1  # the last completed epoch's checkpoint
    resumed.fit(X, y, epochs=4, batch_size=32, resume=True)
    _same(straight, resumed)


def test_plain_fit_after_interrupt_starts_fresh(monkeypatch, default_sigint):
    monkeypatch.setattr(training, "CHUNK_SECONDS", 0.0)
    X, y = D.spirals(100, seed=3)
    net = fastbp.Network([2, 10, 3], seed=1)
    _fake_ctrl_c_after(monkeypatch, net, 2)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=2, batch_size=32)
    monkeypatch.undo()
    hist = net.fit(X, y, epochs=2, batch_size=32)  # no resume: a new run of 2 epochs
    assert len(hist) == 2 and net.epochs_done == 2


# --- pickle and copy.deepcopy --------------------------------------------------------------------
_COPIERS = {"pickle": lambda net: pickle.loads(pickle.dumps(net)), "deepcopy": copy.deepcopy}


@pytest.mark.parametrize("copier", sorted(_COPIERS))
def test_copy_of_fitted_network_trains_on_bit_identically(copier):
    """A pickled or deep-copied network carries parameters, optimizer, optimizer state, step
    count, epochs done and the shuffling RNG: training the copy on gives exactly what
    training the original on does, and the two stay independent. (A constant learning rate:
    a schedule's horizon is the epochs of the fit call that set it.)"""
    X, y = D.spirals(100, seed=5)
    make = lambda: fastbp.Adam(lr=0.01)  # noqa: E731
    straight = fastbp.Network([2, 10, 3], seed=4)
    straight.fit(X, y, epochs=4, batch_size=32, optimizer=make())
    net = fastbp.Network([2, 10, 3], seed=4)
    net.fit(X, y, epochs=2, batch_size=32, optimizer=make())
    before = net.get_flat_parameters()
    twin = _COPIERS[copier](net)
    assert twin is not net and twin._engine is not net._engine
    _same(net, twin)
    np.testing.assert_array_equal(twin.predict_proba(X), net.predict_proba(X))
    twin.fit(X, y, epochs=4, batch_size=32, resume=True)
    _same(straight, twin)
    np.testing.assert_array_equal(net.get_flat_parameters(), before)  # original untouched
    assert net.epochs_done == 2


@pytest.mark.parametrize("copier", sorted(_COPIERS))
def test_copy_of_unfitted_network(copier):
    net = fastbp.Network([3, 5, 2], activation="tanh", output="sigmoid", dtype="float64",
                         seed=7)
    twin = _COPIERS[copier](net)
    assert repr(twin) == repr(net) and twin.optimizer is None and twin._opt_state is None
    X = np.random.default_rng(0).standard_normal((6, 3))
    np.testing.assert_array_equal(twin.forward(X), net.forward(X))
    twin.set_parameters([w * 0 for w in twin.weights], twin.biases)
    assert np.abs(net.weights[0]).sum() > 0  # the copy's parameters are its own


def test_pickle_after_interrupt_resumes_bit_identically(monkeypatch, default_sigint):
    """The interrupted fit's resume point (and the optimizer's schedule) travel with the
    pickle."""
    monkeypatch.setattr(training, "CHUNK_SECONDS", 0.0)
    X, y = D.spirals(100, seed=3)
    straight = fastbp.Network([2, 10, 3], seed=1)
    make = lambda: fastbp.SGD(lr=0.05, momentum=0.9, schedule="cosine")  # noqa: E731
    straight.fit(X, y, epochs=3, batch_size=32, optimizer=make())
    net = fastbp.Network([2, 10, 3], seed=1)
    _fake_ctrl_c_after(monkeypatch, net, 6)  # mid second epoch
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=3, batch_size=32, optimizer=make())
    twin = pickle.loads(pickle.dumps(net))
    twin.fit(X, y, epochs=3, batch_size=32, resume=True)
    _same(straight, twin)

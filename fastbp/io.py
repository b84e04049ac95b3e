"""Saving and loading networks: a versioned .npz of plain arrays plus a JSON header.

No pickle anywhere: loading never executes code. ``save`` writes a temporary file in the same
folder, flushes and fsyncs it, then renames it over the target, so a crash mid-save leaves the
previous file whole.
"""
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

FORMAT = "fastbp-network"
FORMAT_VERSION = 1


def network_state(net, include_optimizer=True):
    """The arrays and JSON header that describe ``net`` completely (host memory)."""
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "layer_sizes": net.layer_sizes, "activations": net.activations, "output": net.output,
        "loss": net.loss_name, "dtype": net.dtype.name, "seed": net.seed,
        "device": net.device, "epochs_done": int(net.epochs_done),
        "rng_state": net._rng.bit_generator.state,
    }
    arrays = {"params": net.get_flat_parameters()}
    if include_optimizer and net.optimizer is not None and net._opt_state is not None:
        opt = net.optimizer
        cfg = opt.get_config()
        sched = opt.schedule
        from .schedules import SCHEDULES
        if type(sched) in SCHEDULES.values():
            cfg["schedule"] = sched.get_config()
        else:
            warnings.warn("the optimizer's callable schedule cannot be saved; a resumed run "
                          "will use a constant learning rate", RuntimeWarning, stacklevel=3)
        header["optimizer"] = cfg
        header["opt_step"] = int(net._opt_step[0])
        state = np.empty((net._opt_state.shape[0], net.n_params), dtype=net.dtype)
        net._engine.state_to_host(net._opt_state, state)
        arrays["opt_state"] = state
    return header, arrays


def save(net, path, include_optimizer=True):
    """Write ``net`` to ``path`` (.npz) atomically: temp file, fsync, rename."""
    header, arrays = network_state(net, include_optimizer)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path!r}: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a folder")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable where the platform allows it
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _bad(path, why):
    return ValueError(f"{path!s} is not a readable fastbp network file: {why}")


def read_state(path):
    """Header dict and arrays of a saved network, fully validated; raises ValueError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such fastbp network file: {path!r}")
    if not os.path.isfile(path):
        raise _bad(path, "not a regular file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # checked first: np.load would call anything else a pickle
        raise _bad(path, "not an .npz (zip) archive" + (" (empty file)" if not magic else ""))
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            if "header" not in files:
                raise _bad(path, f"no header entry: not written by fastbp (has {sorted(files)})")
            raw = data["header"]
            if raw.shape != () or raw.dtype.kind != "U":
                raise _bad(path, f"header must be a text scalar; got {raw.dtype} {raw.shape}")
            header = json.loads(str(raw[()]))
            _check_header(path, header)
            if "params" not in files:
                raise _bad(path, f"missing entries (has {sorted(files)})")
            # Only the entries this version knows are read (no surprise allocations).
            arrays = {k: data[k] for k in ("params", "opt_state") if k in files}
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise _bad(path, exc) from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, json.JSONDecodeError,
            UnicodeDecodeError, RuntimeError, MemoryError, OverflowError) as exc:
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    return header, arrays


def _check_header(path, header):
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _bad(path, "not written by fastbp (format tag missing)")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _bad(path, f"bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise _bad(path, f"format_version {version} is newer than this fastbp reads "
                         f"({FORMAT_VERSION}); upgrade fastbp")
    sizes = header.get("layer_sizes")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                       for s in sizes)):
        raise _bad(path, f"bad layer_sizes {sizes!r}")
    for key in ("epochs_done", "opt_step"):
        v = header.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise _bad(path, f"bad {key} {v!r}")


def network_from_state(state, device=None):
    from .network import Network
    from .optimizers import optimizer_from_config
    from .schedules import SCHEDULES
    header, arrays = state
    path = header.get("_path", "<state>")
    sizes = header.get("layer_sizes")
    params = arrays["params"]
    if isinstance(sizes, list) and all(isinstance(s, int) for s in sizes):
        # Checked before building the network: a forged header cannot make us allocate more
        # than the file itself holds.
        expected = sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) + sum(sizes[1:])
        if params.shape != (expected,):
            raise _bad(path, f"params has shape {params.shape}, expected ({expected},) for "
                             f"layer_sizes {sizes}")
    if params.dtype.kind != "f":
        raise _bad(path, f"params must be floats; got dtype {params.dtype}")
    try:
        net = Network(header["layer_sizes"], activation=header["activations"],
                      output=header["output"], loss=header["loss"], dtype=header["dtype"],
                      device=device or "cpu", seed=header["seed"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"bad network description ({exc})") from None
    if params.shape != (net.n_params,):
        raise _bad(path, f"params has shape {params.shape}, expected ({net.n_params},)")
    with np.errstate(over="ignore", invalid="ignore"):
        params = params.astype(net.dtype)
    if not np.isfinite(params).all():
        raise _bad(path, "params contain NaN or Inf")
    net._engine.set_params(params)
    try:
        net.epochs_done = int(header.get("epochs_done", 0))
        if header.get("rng_state") is not None:
            net._rng.bit_generator.state = header["rng_state"]
        if "optimizer" in header and "opt_state" in arrays:
            cfg = dict(header["optimizer"])
            sched = cfg.pop("schedule", None)
            if sched is not None:
                sched = dict(sched)
                cls = {c.__name__: c for c in SCHEDULES.values()}[sched.pop("name")]
                cfg["schedule"] = cls(**sched)
            opt = optimizer_from_config(cfg)
            state = arrays["opt_state"]
            if state.shape != (opt.n_state, net.n_params):
                raise ValueError(f"opt_state has shape {state.shape}, expected "
                                 f"{(opt.n_state, net.n_params)}")
            if state.dtype.kind != "f":
                raise ValueError(f"opt_state must be floats; got dtype {state.dtype}")
            with np.errstate(over="ignore", invalid="ignore"):
                state = state.astype(net.dtype)
            if not np.isfinite(state).all():
                raise ValueError("opt_state contains NaN or Inf")
            net.optimizer = opt
            net._opt_state = net._engine.new_state(opt.n_state)
            net._engine.state_from_host(net._opt_state, state)
            net._opt_step[0] = int(header.get("opt_step", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"bad training state ({exc})") from None
    return net


def load(path, device="cpu"):
    """Load a network saved by ``Network.save`` (or a checkpoint) onto ``device``.

    Parameters
    ----------
    path : str or path
        The .npz file.
    device : str
        Where the loaded network lives ("cpu", "cuda", "cuda:N"), whatever it was saved from.

    Returns
    -------
    Network
    """
    from ._devices import parse_device
    parse_device(device)  # a bad device is the caller's error, not the file's
    header, arrays = read_state(path)
    header["_path"] = os.fspath(path)
    return network_from_state((header, arrays), device=device)

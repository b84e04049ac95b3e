"""Every bad input of issue 6, table-driven: the exception type and a message that names the
argument (and what was expected); plus the inputs that must be accepted and converted once."""
import numpy as np
import pytest

import fastbp

RNG = np.random.default_rng(0)
X = RNG.standard_normal((10, 3))
Y = np.arange(10) % 2


def clf():
    return fastbp.Network([3, 4, 2], seed=0)


def bce():
    return fastbp.Network([3, 4, 1], output="sigmoid", seed=0)


def reg():
    return fastbp.Network([3, 4, 2], output="identity", seed=0)


def with_nan(a):
    a = np.array(a, dtype=float)
    a.flat[3] = np.nan
    return a


def with_inf(a):
    a = np.array(a, dtype=float)
    a.flat[1] = -np.inf
    return a


def good_params(net):
    return net.weights, net.biases


W_OK, B_OK = good_params(clf())

# (id, call, exception type, regex the message must match: names the argument)
CASES = [
    # --- X -----------------------------------------------------------------------------------
    ("X wrong features", lambda: clf().fit(X[:, :2], Y), ValueError, r"X must have 3 features.*got 2"),
    ("X 1-D", lambda: clf().fit(X[:, 0], Y), ValueError, r"X must be 2-D.*shape \(10,\)"),
    ("X 3-D", lambda: clf().predict(X[:, :, None]), ValueError, r"X must be 2-D"),
    ("X scalar", lambda: clf().predict(3.0), ValueError, r"X must be 2-D"),
    ("X empty rows", lambda: clf().fit(X[:0], Y[:0]), ValueError, r"X must not be empty"),
    ("X empty predict", lambda: clf().predict(np.empty((0, 3))), ValueError, r"X must not be empty"),
    ("X NaN", lambda: clf().fit(with_nan(X), Y), ValueError, r"X contains NaN or Inf"),
    ("X Inf", lambda: clf().fit(with_inf(X), Y), ValueError, r"X contains NaN or Inf"),
    ("X overflows float32", lambda: clf().predict(np.full((2, 3), 1e300)), ValueError,
     r"X contains values too large for float32"),
    ("X object", lambda: clf().fit(X.astype(object), Y), TypeError, r"X must hold numbers.*object"),
    ("X strings", lambda: clf().fit(X.astype(str), Y), TypeError, r"X must hold numbers.*<U"),
    ("X bytes", lambda: clf().predict(np.array([[b"1", b"2", b"3"]])), TypeError, r"X must hold numbers"),
    ("X complex", lambda: clf().predict(X.astype(complex)), TypeError, r"X must hold numbers.*complex"),
    ("X ragged list", lambda: clf().predict([[1, 2, 3], [1, 2]]), ValueError, r"X must be a rectangular"),
    ("X None", lambda: clf().predict(None), TypeError, r"X must hold numbers"),
    # --- y -----------------------------------------------------------------------------------
    ("y length", lambda: clf().fit(X, Y[:5]), ValueError, r"y must have one row per sample of X \(10\); got 5"),
    ("y label too big", lambda: clf().fit(X, Y + 5), ValueError, r"y labels must lie in \[0, 2\).*max 6"),
    ("y label negative", lambda: clf().fit(X, Y - 1), ValueError, r"y labels must lie in \[0, 2\).*min -1"),
    ("y label huge float", lambda: clf().fit(X, Y * 1e20), ValueError, r"y labels must lie in \[0, 2\)"),
    ("y non-integer labels", lambda: clf().fit(X, Y + 0.5), ValueError, r"y must hold integer class labels.*0\.5"),
    ("y one-hot out of range", lambda: clf().fit(X, np.full((10, 2), 2.0)), ValueError, r"y must lie in \[0, 1\] for cross_entropy"),
    ("y bce out of [0,1]", lambda: bce().fit(X, Y * 2.0), ValueError, r"y must lie in \[0, 1\] for binary_cross_entropy"),
    ("y bce negative", lambda: bce().fit(X, -Y), ValueError, r"y must lie in \[0, 1\] for binary_cross_entropy"),
    ("y NaN", lambda: reg().fit(X, with_nan(np.zeros((10, 2)))), ValueError, r"y contains NaN or Inf"),
    ("y Inf", lambda: bce().fit(X, with_inf(Y)), ValueError, r"y contains NaN or Inf"),
    ("y overflows float32", lambda: reg().fit(X, np.full((10, 2), 1e300)), ValueError, r"y contains values too large"),
    ("y object", lambda: clf().fit(X, Y.astype(object)), TypeError, r"y must hold numbers.*object"),
    ("y strings", lambda: clf().fit(X, Y.astype(str)), TypeError, r"y must hold numbers"),
    ("y wrong columns", lambda: clf().fit(X, np.zeros((10, 3))), ValueError, r"y must have 2 columns"),
    ("y 1-D for 2 mse outputs", lambda: reg().fit(X, Y), ValueError, r"y must be 2-D \(n_samples, 2\)"),
    ("y 3-D", lambda: clf().fit(X, np.zeros((10, 2, 1))), ValueError, r"y must be 1-D or 2-D"),
    ("y scalar", lambda: clf().fit(X, 1), ValueError, r"y must be 1-D or 2-D"),
    ("validation X", lambda: clf().fit(X, Y, validation_data=(X[:, :2], Y)), ValueError, r"validation_data\[0\] must have 3 features"),
    ("validation y", lambda: clf().fit(X, Y, validation_data=(X, Y + 3)), ValueError, r"validation_data\[1\] labels"),
    ("validation shape", lambda: clf().fit(X, Y, validation_data=X), ValueError, r"validation_data must be a tuple"),
    # --- fit arguments -------------------------------------------------------------------------
    ("batch_size 0", lambda: clf().fit(X, Y, batch_size=0), ValueError, r"batch_size must be >= 1; got 0"),
    ("batch_size -3", lambda: clf().fit(X, Y, batch_size=-3), ValueError, r"batch_size must be >= 1; got -3"),
    ("batch_size float", lambda: clf().fit(X, Y, batch_size=8.0), TypeError, r"batch_size must be an integer"),
    ("epochs -1", lambda: clf().fit(X, Y, epochs=-1), ValueError, r"epochs must be >= 0; got -1"),
    ("epochs float", lambda: clf().fit(X, Y, epochs=2.5), TypeError, r"epochs must be an integer"),
    ("epochs bool", lambda: clf().fit(X, Y, epochs=True), TypeError, r"epochs must be an integer"),
    ("epochs None", lambda: clf().fit(X, Y, epochs=None), TypeError, r"epochs must be an integer"),
    ("optimizer name", lambda: clf().fit(X, Y, optimizer="rmsprop"), ValueError, r"optimizer must be one of \['adam', 'sgd'\].*rmsprop"),
    ("optimizer type", lambda: clf().fit(X, Y, optimizer=3), ValueError, r"optimizer must be one of"),
    ("checkpoint_every 0", lambda: clf().fit(X, Y, checkpoint_every=0), ValueError, r"checkpoint_every must be >= 1"),
    ("on_divergence", lambda: clf().fit(X, Y, on_divergence="ignore"), ValueError, r"on_divergence must be one of \['raise', 'stop'\]"),
    ("shuffle", lambda: clf().fit(X, Y, shuffle="yes"), TypeError, r"shuffle must be a bool"),
    ("callbacks", lambda: clf().fit(X, Y, callbacks=[3]), TypeError, r"callbacks must hold"),
    ("early_stopping", lambda: clf().fit(X, Y, early_stopping=0), ValueError, r"early_stopping must be >= 1"),
    ("resume without state", lambda: clf().fit(X, Y, resume=True), ValueError, r"resume=True needs"),
    # --- optimizers --------------------------------------------------------------------------
    ("lr 0", lambda: fastbp.SGD(lr=0), ValueError, r"lr must be > 0"),
    ("lr negative", lambda: fastbp.Adam(lr=-1e-3), ValueError, r"lr must be > 0"),
    ("lr NaN", lambda: fastbp.SGD(lr=float("nan")), ValueError, r"lr must be finite; got nan"),
    ("lr NaN adam", lambda: fastbp.Adam(lr=float("nan")), ValueError, r"lr must be finite"),
    ("lr Inf", lambda: fastbp.SGD(lr=float("inf")), ValueError, r"lr must be finite"),
    ("lr string", lambda: fastbp.SGD(lr="0.1"), TypeError, r"lr must be a real number.*'0.1'"),
    ("lr None", lambda: fastbp.SGD(lr=None), TypeError, r"lr must be a real number"),
    ("momentum 1", lambda: fastbp.SGD(momentum=1.0), ValueError, r"momentum must be < 1.0"),
    ("momentum negative", lambda: fastbp.SGD(momentum=-0.1), ValueError, r"momentum must be >= 0"),
    ("nesterov no momentum", lambda: fastbp.SGD(nesterov=True), ValueError, r"nesterov=True needs momentum > 0"),
    ("weight_decay negative", lambda: fastbp.SGD(weight_decay=-1), ValueError, r"weight_decay must be >= 0"),
    ("beta1 1", lambda: fastbp.Adam(beta1=1.0), ValueError, r"beta1 must be < 1.0"),
    ("beta2 NaN", lambda: fastbp.Adam(beta2=float("nan")), ValueError, r"beta2 must be finite"),
    ("eps 0", lambda: fastbp.Adam(eps=0), ValueError, r"eps must be > 0"),
    ("schedule", lambda: fastbp.SGD(schedule="bogus"), ValueError, r"schedule must be one of"),
    ("StepLR step_size", lambda: fastbp.StepLR(step_size=0), ValueError, r"step_size must be >= 1"),
    ("ExponentialLR gamma", lambda: fastbp.ExponentialLR(gamma=0), ValueError, r"gamma must be > 0"),
    # --- Network -----------------------------------------------------------------------------
    ("activation name", lambda: fastbp.Network([3, 4, 2], activation="relux"), ValueError,
     r"activation must be one of \['elu', 'gelu', 'identity', 'leaky_relu', 'relu', 'sigmoid', 'softplus', 'tanh'\]; got 'relux'"),
    ("activation softmax hidden", lambda: fastbp.Network([3, 4, 2], activation="softmax"), ValueError, r"activation must be one of"),
    ("activation count", lambda: fastbp.Network([3, 4, 4, 2], activation=["relu"]), ValueError, r"activation must be one name or one per hidden layer \(2\)"),
    ("output name", lambda: fastbp.Network([3, 4, 2], output="softmin"), ValueError, r"output must be one of .*'softmax'.*got 'softmin'"),
    ("loss name", lambda: fastbp.Network([3, 4, 2], loss="hinge"), ValueError, r"loss must be one of \['binary_cross_entropy', 'cross_entropy', 'mse'\]; got 'hinge'"),
    ("loss/output mismatch ce", lambda: fastbp.Network([3, 4, 2], output="relu", loss="cross_entropy"), ValueError, r"loss='cross_entropy' does not fit output='relu'.*softmax"),
    ("loss/output mismatch bce", lambda: fastbp.Network([3, 4, 2], output="softmax", loss="binary_cross_entropy"), ValueError, r"loss='binary_cross_entropy' does not fit output='softmax'.*sigmoid"),
    ("device name", lambda: fastbp.Network([3, 4, 2], device="tpu"), ValueError, r"device must be 'cpu', 'cuda' or 'cuda:N'; got 'tpu'"),
    ("device cpu:0", lambda: fastbp.Network([3, 4, 2], device="cpu:0"), ValueError, r"device must be"),
    ("dtype int", lambda: fastbp.Network([3, 4, 2], dtype="int32"), ValueError, r"dtype must be one of \['float32', 'float64'\]; got 'int32'"),
    ("dtype float16", lambda: fastbp.Network([3, 4, 2], dtype=np.float16), ValueError, r"dtype must be one of"),
    ("dtype None", lambda: fastbp.Network([3, 4, 2], dtype=None), ValueError, r"dtype must be one of.*None"),
    ("layer size 0", lambda: fastbp.Network([3, 0, 2]), ValueError, r"layer_sizes\[1\] must be >= 1; got 0"),
    ("layer size negative", lambda: fastbp.Network([-3, 4, 2]), ValueError, r"layer_sizes\[0\] must be >= 1"),
    ("layer size float", lambda: fastbp.Network([3, 2.5, 2]), TypeError, r"layer_sizes\[1\] must be an integer; got 2.5"),
    ("layer size str", lambda: fastbp.Network([3, "4", 2]), TypeError, r"layer_sizes\[1\] must be an integer"),
    ("layer sizes too few", lambda: fastbp.Network([3]), ValueError, r"layer_sizes needs at least"),
    ("layer sizes int", lambda: fastbp.Network(5), TypeError, r"layer_sizes must be a sequence"),
    ("layer sizes str", lambda: fastbp.Network("3,4,2"), TypeError, r"layer_sizes must be a sequence"),
    ("seed negative", lambda: fastbp.Network([3, 4, 2], seed=-1), ValueError, r"seed must be >= 0"),
    ("seed float", lambda: fastbp.Network([3, 4, 2], seed=1.5), TypeError, r"seed must be an integer"),
    # --- predict / loss / gradients / predict_proba ------------------------------------------
    ("predict 1-D", lambda: clf().predict([1, 2, 3]), ValueError, r"X must be 2-D.*reshape"),
    ("predict NaN", lambda: clf().predict([[1, 2, np.nan]]), ValueError, r"X contains NaN"),
    ("predict features", lambda: clf().predict(np.zeros((4, 5))), ValueError, r"X must have 3 features"),
    ("predict_proba mse", lambda: reg().predict_proba(X), ValueError, r"predict_proba needs a classification loss"),
    ("loss y length", lambda: clf().loss(X, Y[:3]), ValueError, r"y must have one row per sample"),
    ("accuracy labels", lambda: clf().accuracy(X, Y + 2), ValueError, r"y labels must lie in"),
    ("gradients y length", lambda: clf().gradients(X, Y[:3]), ValueError, r"y must have one row per sample"),
    ("gradients X NaN", lambda: clf().gradients(with_nan(X), Y), ValueError, r"X contains NaN"),
    ("gradients y strings", lambda: clf().gradients(X, Y.astype(str)), TypeError, r"y must hold numbers"),
    # --- set_parameters ----------------------------------------------------------------------
    ("set_parameters count", lambda: clf().set_parameters(W_OK[:1], B_OK[:1]), ValueError, r"weights and biases must each hold 2 arrays; got 1 and 1"),
    ("set_parameters shape", lambda: clf().set_parameters([W_OK[0].T, W_OK[1]], B_OK), ValueError, r"weights\[0\] must have shape \(3, 4\); got \(4, 3\)"),
    ("set_parameters bias shape", lambda: clf().set_parameters(W_OK, [B_OK[0], np.zeros(3)]), ValueError, r"biases\[1\] must have shape \(2,\); got \(3,\)"),
    ("set_parameters NaN", lambda: clf().set_parameters([with_nan(W_OK[0]), W_OK[1]], B_OK), ValueError, r"weights\[0\] contains NaN or Inf"),
    ("set_parameters Inf bias", lambda: clf().set_parameters(W_OK, [with_inf(B_OK[0]), B_OK[1]]), ValueError, r"biases\[0\] contains NaN or Inf"),
    ("set_parameters strings", lambda: clf().set_parameters([W_OK[0].astype(str), W_OK[1]], B_OK), TypeError, r"weights\[0\] must hold numbers"),
    ("set_parameters object", lambda: clf().set_parameters([W_OK[0].astype(object), W_OK[1]], B_OK), TypeError, r"weights\[0\] must hold numbers"),
    ("set_parameters None", lambda: clf().set_parameters(None, B_OK), TypeError, r"weights must be a sequence of 2 arrays"),
    ("set_parameters None entry", lambda: clf().set_parameters([None, W_OK[1]], B_OK), TypeError, r"weights\[0\] must be an array of shape \(3, 4\)"),
    # --- load --------------------------------------------------------------------------------
    ("load missing", lambda: fastbp.load("/nonexistent/model.npz"), FileNotFoundError, r"no such fastbp network file.*model.npz"),
    ("load device", lambda: fastbp.load(__file__, device="gpu"), ValueError, r"device must be|not a readable"),
]


@pytest.mark.parametrize("call,exc,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(call, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert type(info.value) is exc or issubclass(type(info.value), exc)
    assert len(str(info.value).splitlines()) == 1  # one readable line


def test_failed_fit_leaves_network_untouched():
    net = clf()
    before = net.get_flat_parameters()
    for call in (lambda: net.fit(with_nan(X), Y), lambda: net.fit(X, Y + 7),
                 lambda: net.fit(X, Y, batch_size=0)):
        with pytest.raises(ValueError):
            call()
    np.testing.assert_array_equal(net.get_flat_parameters(), before)
    assert net.epochs_done == 0 and net.optimizer is None


def test_failed_set_parameters_leaves_network_untouched():
    net = clf()
    before = net.get_flat_parameters()
    with pytest.raises(ValueError):
        net.set_parameters([np.ones((3, 4)), np.ones((4, 2))], [np.ones(4), np.array([1, np.nan])])
    np.testing.assert_array_equal(net.get_flat_parameters(), before)


# --- accepted inputs: converted once, identical results ----------------------------------------
def _variants(a):
    """The same values as a list, a Fortran-ordered array, a strided view and (if integral)
    an int array."""
    f = np.asfortranarray(a)
    big = np.zeros((a.shape[0] * 2,) + a.shape[1:], dtype=a.dtype)
    big[::2] = a
    strided = big[::2]
    assert not strided.flags.c_contiguous
    out = {"list": a.tolist(), "fortran": f, "strided": strided}
    if a.ndim == 2:
        wide = np.zeros((a.shape[0], a.shape[1] * 3), dtype=a.dtype)
        wide[:, ::3] = a
        out["column-strided"] = wide[:, ::3]
        out["transposed-view"] = np.ascontiguousarray(a.T).T
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lists_int_fortran_and_strided_inputs_match(dtype):
    Xi = np.random.default_rng(1).integers(-3, 4, (37, 3))  # integer features
    Xf = Xi.astype(np.float64)
    y = np.random.default_rng(2).integers(0, 2, 37)

    def run(Xa, ya):
        net = fastbp.Network([3, 5, 2], dtype=dtype, seed=4)
        net.fit(Xa, ya, epochs=2, batch_size=8, optimizer="adam")
        return (net.get_flat_parameters(), net.predict_proba(Xa), net.loss(Xa, ya),
                net.gradients(Xa, ya))

    want = run(Xf, y)
    inputs = {"int array": (Xi, y), "int32": (Xi.astype(np.int32), y.astype(np.int32)),
              "bool y": (Xf, y.astype(bool))}
    for name, Xa in _variants(Xf).items():
        inputs[name] = (Xa, y)
    for name, ya in _variants(y).items():
        inputs["y " + name] = (Xf, ya)
    inputs["float labels"] = (Xf, y.astype(np.float64))
    for name, (Xa, ya) in inputs.items():
        got = run(Xa, ya)
        np.testing.assert_array_equal(got[0], want[0], err_msg=name)
        np.testing.assert_array_equal(got[1], want[1], err_msg=name)
        assert got[2] == want[2], name
        for g, w in zip(got[3][0] + got[3][1], want[3][0] + want[3][1]):
            np.testing.assert_array_equal(g, w, err_msg=name)


def test_labels_and_one_hot_and_fortran_one_hot_agree():
    Xf = np.random.default_rng(3).standard_normal((20, 3))
    y = np.random.default_rng(4).integers(0, 2, 20)
    onehot = np.eye(2)[y]
    nets = []
    for ya in (y, onehot, np.asfortranarray(onehot), onehot.tolist()):
        net = fastbp.Network([3, 4, 2], dtype="float64", seed=0)
        net.fit(Xf, ya, epochs=2, batch_size=5)
        nets.append(net.get_flat_parameters())
    for p in nets[1:]:
        np.testing.assert_array_equal(p, nets[0])


def test_set_parameters_accepts_lists_fortran_and_views():
    net = clf()
    W, b = net.weights, net.biases
    want = net.get_flat_parameters()
    for Ws, bs in ([[w.tolist() for w in W], [x.tolist() for x in b]],
                   [[np.asfortranarray(w) for w in W], b],
                   [[np.ascontiguousarray(w.T).T for w in W], [np.repeat(x, 2)[::2] for x in b]],
                   [[w.astype(np.float64) for w in W], b]):
        net.set_parameters(Ws, bs)
        np.testing.assert_array_equal(net.get_flat_parameters(), want)


def test_inputs_are_not_modified():
    Xa = np.asfortranarray(X.copy())
    ya = Y.copy()
    X0, y0 = Xa.copy(), ya.copy()
    net = clf()
    net.fit(Xa, ya, epochs=1)
    net.predict(Xa)
    net.gradients(Xa, ya)
    np.testing.assert_array_equal(Xa, X0)
    np.testing.assert_array_equal(ya, y0)


def test_read_only_inputs_train_like_writable_ones_without_a_second_compile(tmp_path):
    """A read-only memory map of the network's dtype (``np.load(..., mmap_mode="r")``) passes
    the input checks uncopied. Numba would compile a specialisation of its own for it (a
    second cold compile of the training driver); the engine passes its data read-only
    always, so the read-only inputs reuse the writable inputs' compiled code, and train to
    the same bits."""
    from fastbp.kernels.cpu import network as K
    Xw = X.astype(np.float32)
    Yw = np.eye(2, dtype=np.float32)[Y]
    np.save(tmp_path / "X.npy", Xw)
    np.save(tmp_path / "Y.npy", Yw)
    Xm, Ym = np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "Y.npy", mmap_mode="r")
    assert not Xm.flags.writeable and not Ym.flags.writeable
    writable, mapped = clf(), clf()
    writable.fit(Xw, Yw, epochs=2, batch_size=4)
    grads_w = writable.gradients(Xw, Yw)
    kernels = (K.train_batches, K.backward_network, K.batch_loss_sum, K.forward_network)
    compiled = [len(k.signatures) for k in kernels]
    mapped.fit(Xm, Ym, epochs=2, batch_size=4)
    np.testing.assert_array_equal(mapped.get_flat_parameters(),
                                  writable.get_flat_parameters())
    grads_m = mapped.gradients(Xm, Ym)
    for g, w in zip(grads_m[0] + grads_m[1], grads_w[0] + grads_w[1]):
        np.testing.assert_array_equal(g, w)
    assert [len(k.signatures) for k in kernels] == compiled

"""Every public function and class of fastbp and fastbp.kernels has a numpydoc docstring whose
Parameters section names exactly the parameters of its signature, in order.

Public = the names in ``__all__`` of fastbp, fastbp.kernels, fastbp.sklearn and fastbp.plot,
plus the public methods of the public classes. A class's Parameters section documents
``__init__``. Compiled kernels (numba dispatchers) are checked against their Python function.
"""
import inspect
import re

import pytest

import fastbp
import fastbp.kernels

SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]+)\n\s*-{3,}\s*$", re.M)
MODULES = ["fastbp", "fastbp.kernels", "fastbp.sklearn", "fastbp.plot"]


def _module(name):
    if name == "fastbp.sklearn":
        pytest.importorskip("sklearn")
    if name == "fastbp.plot":
        pytest.importorskip("matplotlib")
    import importlib
    return importlib.import_module(name)


def _python_function(obj):
    return getattr(obj, "py_func", obj)  # numba dispatchers keep the Python function here


def _sections(doc):
    """{section title: body text} of a numpydoc docstring."""
    doc = inspect.cleandoc(doc)
    marks = list(SECTION.finditer(doc))
    out = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(doc)
        out[m.group(1).strip()] = doc[m.end():end]
    return out


def documented_parameters(doc):
    """Names from a numpydoc Parameters section: ``name : type`` lines at the base indent;
    ``a, b : type`` documents several; ``*args`` / ``**kwargs`` are allowed."""
    body = _sections(doc).get("Parameters")
    if body is None:
        return None
    lines = [l for l in body.splitlines() if l.strip()]
    if not lines:
        return []
    indent = min(len(l) - len(l.lstrip()) for l in lines)
    names = []
    for line in lines:
        if len(line) - len(line.lstrip()) != indent:
            continue  # a description line
        head = line.split(" : ")[0].strip()
        names.extend(n.strip().lstrip("*") for n in head.split(","))
    return names


def signature_parameters(obj):
    if inspect.isclass(obj):
        owner = next(k for k in obj.__mro__ if "__init__" in vars(k))
        if not owner.__module__.startswith("fastbp"):
            return []  # object's or Exception's constructor: nothing to document
        target = obj.__init__
    else:
        target = _python_function(obj)
    sig = inspect.signature(target)
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls")]


def _public_objects():
    seen, out = set(), []

    def add(qualname, obj):
        key = id(_python_function(obj))
        if key not in seen:
            seen.add(key)
            out.append((qualname, obj))

    for modname in MODULES:
        try:
            mod = _module(modname)
        except pytest.skip.Exception:
            continue
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            add(f"{modname}.{name}", obj)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not inspect.isfunction(member):
                        continue
                    add(f"{modname}.{name}.{attr}", member)
    return out


PUBLIC = _public_objects()

# Public objects whose docstring may not conform yet, as strict expected failures (a fixed one
# XPASSes and fails the run until removed here). Empty: every public docstring conforms.
PENDING = set()


def _check(qualname, obj):
    doc = inspect.getdoc(_python_function(obj)) if not inspect.isclass(obj) else obj.__doc__
    assert doc and doc.strip(), f"{qualname} has no docstring"
    assert doc.strip().splitlines()[0].strip(), f"{qualname}: the summary line is empty"
    params = signature_parameters(obj)
    documented = documented_parameters(doc)
    if not params:
        assert not documented, f"{qualname} documents {documented} but takes no parameters"
        return
    assert documented is not None, f"{qualname} takes {params} but has no Parameters section"
    assert documented == params, (f"{qualname}: Parameters section lists {documented}, the "
                                  f"signature has {params}")


@pytest.mark.parametrize("qualname,obj", [
    pytest.param(q, o, id=q, marks=pytest.mark.xfail(strict=True, reason="pending lead fix")
                 if q in PENDING else ())
    for q, o in PUBLIC])
def test_public_docstring_matches_signature(qualname, obj):
    _check(qualname, obj)


def test_parser_catches_mismatches():
    def good(a, b, *args, c=1, **kwargs):
        """Summary.

        Parameters
        ----------
        a, b : int
            Two numbers.
        *args : tuple
            More.
        c : int
            Indented description lines with a colon : are not names.
        **kwargs : dict
            Options.

        Returns
        -------
        int
        """

    def missing(a, b):
        """Summary.

        Parameters
        ----------
        a : int
            Only one.
        """

    def no_section(a):
        """Summary only."""

    _check("good", good)
    with pytest.raises(AssertionError, match="lists"):
        _check("missing", missing)
    with pytest.raises(AssertionError, match="no Parameters section"):
        _check("no_section", no_section)
    assert len(PUBLIC) > 40  # the collection found the API, not an empty list

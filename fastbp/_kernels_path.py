"""Make ``fastbp.kernels`` importable when fastbp runs from a source checkout.

Installed (regular or editable), ``fastbp.kernels`` maps to the top-level ``kernels/`` folder
through pyproject's package-dir. Run from the repository root without installing, Python finds
``fastbp/`` but not the mapping; this loads ``kernels/`` under its installed name instead.
"""
import importlib.util
import os
import sys

_NAME = "fastbp.kernels"

if _NAME not in sys.modules and importlib.util.find_spec(_NAME) is None:
    _src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")
    _spec = importlib.util.spec_from_file_location(
        _NAME, os.path.join(_src, "__init__.py"), submodule_search_locations=[_src])
    if _spec is not None:
        _mod = importlib.util.module_from_spec(_spec)
        sys.modules[_NAME] = _mod
        _spec.loader.exec_module(_mod)

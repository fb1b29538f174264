"""Imports a script from `tools/` (not a package) for the tests that run
the README's tools (`test_qat.py`, `test_recipe_sweep.py`)."""

import importlib.util
import pathlib

TOOLS = pathlib.Path(__file__).parents[1] / "tools"


def load_tool(name):
    """The module `tools/<name>.py`, executed once per call."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

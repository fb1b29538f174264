"""The public API carries complete type hints, and mypy accepts them.

Keras, TensorFlow and LiteRT ship no stubs, so their names are `Any` to
mypy (`setup.cfg`, `[mypy]`): the hints document the API and mypy checks
tfkd's own code against them.
"""

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import tfkd

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "tfkd.datasets",
    "tfkd.evaluation",
    "tfkd.export",
    "tfkd.models",
    "tfkd.teachers",
)
# Public methods that users call with arguments of their own.
PUBLIC_METHODS = (
    ("tfkd.teachers.Ensemble.__init__", tfkd.teachers.Ensemble.__init__),
    (
        "tfkd.teachers.CachedLogits.__init__",
        tfkd.teachers.CachedLogits.__init__,
    ),
    ("tfkd.Distiller.__init__", tfkd.Distiller.__init__),
    ("tfkd.Distiller.compile", tfkd.Distiller.compile),
)


def missing_annotations(function):
    """Names of the unannotated parameters, plus `"return"` if unannotated.

    `self`, `*args` and `**kwargs` are not counted.
    """
    signature = inspect.signature(function)
    missing = [
        name
        for name, parameter in signature.parameters.items()
        if name != "self"
        and parameter.kind
        not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        and parameter.annotation is parameter.empty
    ]
    if signature.return_annotation is signature.empty:
        missing.append("return")
    return missing


def public_functions():
    """`(dotted name, function)` for each function in the `__all__`s."""
    found = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(value):
                found.append((f"{package}.{name}", value))
    return found


def test_missing_annotations_finds_each_gap():
    def untyped(a, b: int, *args, c=1, **kwargs) -> None:
        del a, b, args, c, kwargs

    def no_return(a: int):
        del a

    def typed(a: int, *args: int, b: str = "", **kwargs: float) -> int:
        return a

    assert missing_annotations(untyped) == ["a", "c"]
    assert missing_annotations(no_return) == ["return"]
    assert missing_annotations(typed) == []


def test_public_functions_are_found():
    names = {name for name, _ in public_functions()}
    # One per package, so an import that breaks the listing shows here.
    for expected in (
        "tfkd.datasets.synthetic_movielens",
        "tfkd.evaluation.auc",
        "tfkd.export.to_tflite",
        "tfkd.models.ranking_model",
        "tfkd.teachers.cache_logits",
    ):
        assert expected in names


@pytest.mark.parametrize(
    "name, function",
    [
        pytest.param(name, function, id=name)
        for name, function in public_functions() + list(PUBLIC_METHODS)
    ],
)
def test_public_function_is_fully_annotated(name, function):
    missing = missing_annotations(function)
    assert not missing, f"{name} lacks type hints for: {missing}"


def test_mypy_is_clean():
    # `files = tfkd` and the options come from setup.cfg in the root.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]

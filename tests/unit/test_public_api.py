"""The public surface is exactly what is documented, and every name resolves."""

from __future__ import annotations

import inspect

import evsrc
import evsrc.errors


def test_all_is_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(evsrc).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(evsrc.__all__) == public
    assert len(evsrc.__all__) == len(set(evsrc.__all__))


def test_every_exported_class_and_function_has_a_docstring() -> None:
    for name in evsrc.__all__:
        value = getattr(evsrc, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name


def test_every_error_is_exported_and_derives_from_the_root() -> None:
    errors = {
        name
        for name, value in vars(evsrc.errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }
    assert errors == set(evsrc.errors.__all__)
    for name in errors:
        assert issubclass(getattr(evsrc.errors, name), evsrc.EvsrcError)
        assert getattr(evsrc, name) is getattr(evsrc.errors, name)


def test_error_tree_drawing_names_every_error() -> None:
    doc = evsrc.errors.__doc__ or ""
    for name in evsrc.errors.__all__:
        assert name in doc, f"{name} missing from the tree in evsrc/errors.py"


def test_the_testing_kit_is_public_and_needs_no_pytest_for_its_doubles() -> None:
    import subprocess
    import sys

    import evsrc.testing

    for name in evsrc.testing.__all__:
        assert inspect.getdoc(getattr(evsrc.testing, name)), name
    code = (
        "import sys, evsrc.testing, evsrc.testing.stores, evsrc.testing.spec; "
        "assert 'pytest' not in sys.modules and 'hypothesis' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

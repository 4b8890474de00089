"""``evsrc.projection`` as a package: the old names still import, and its rooms stay small."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import evsrc
import evsrc.projection

PACKAGE = Path(evsrc.projection.__file__).parent

# Every name that ``evsrc.projection`` offered when it was one module and that
# other code imports (the backends and the tests use the last four).
NAMES = [
    *evsrc.projection.__all__,
    "overrides_handle_batch",
    "_LeaseLostError",
    "STOPPED",
    "STANDBY",
    "CATCHING_UP",
    "RUNNING",
]


def test_the_names_of_the_old_module_import_from_the_package() -> None:
    for name in NAMES:
        assert hasattr(evsrc.projection, name), name
    for name in evsrc.projection.__all__:
        assert getattr(evsrc, name) is getattr(evsrc.projection, name), name
    states = [evsrc.projection.STOPPED, evsrc.projection.STANDBY]
    assert states == ["stopped", "standby"]


def test_every_module_of_the_package_imports_on_its_own() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem != "__init__":
            importlib.import_module(f"evsrc.projection.{path.stem}")


def test_modules_under_400_lines_and_classes_under_250() -> None:
    sizes = {}
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert text.count("\n") <= 400, f"{path.name}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                sizes[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert "runner.py:ProjectionRunner" in sizes
    too_big = {name: n for name, n in sizes.items() if n > 250}
    assert not too_big, too_big

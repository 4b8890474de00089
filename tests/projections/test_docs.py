"""The Python examples of docs/framework.md's "Projections as deployed" run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "framework.md"
_TEXT = DOC.read_text(encoding="utf-8")
_SECTION = _TEXT[_TEXT.index("### Projections as deployed") : _TEXT.index("## 6. ")]
BLOCKS = re.findall(r"```python\n(.*?)```", _SECTION, flags=re.S)


def test_the_chapter_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_projection_example_runs(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out.strip()

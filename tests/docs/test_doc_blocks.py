"""Every ```python block in README.md and docs/*.md runs as written and passes mypy --strict.

The rules a doc block follows (docs/framework.md, "Examples in these docs"):

- The blocks of one file are one session, in order: a block may use what an
  earlier block of the same file defined.
- A block may ``await`` at top level (as in ``python -m asyncio``); the
  file's session is then type-checked as the body of one ``async def``.
- A block that needs PostgreSQL says so with ``<!-- docs: requires postgres -->``
  on a line of its own before the fence, and reads its server's URL from the
  ``DATABASE_URL`` environment variable; the test points that at a fresh
  database (of ``EVSRC_TEST_DSN``'s server).

Both checks run where a user's code runs: in a temporary directory outside
the repository, with the installed evsrc (the run in a subprocess, with a
time limit, so a block that never ends fails instead of hanging the suite).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_TIMEOUT = 120
FENCE = re.compile(r"^```python\s*$")
MARKER = re.compile(r"^<!--\s*docs:\s*(.*?)\s*-->\s*$")
KNOWN_MARKERS = {"requires postgres"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the first code line
    code: str
    markers: set[str]

    @property
    def name(self) -> str:
        return (
            str(self.path.relative_to(REPO)) if self.path.is_relative_to(REPO) else self.path.name
        )

    @property
    def where(self) -> str:
        return f"{self.name}:{self.line}"

    @property
    def awaits(self) -> bool:
        """True if the block awaits at top level (compiles only as a coroutine)."""
        try:
            compile(self.code, self.where, "exec")
        except SyntaxError:
            compile(self.code, self.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            return True
        return False


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        markers: set[str] = set()
        j = i - 1
        while j >= 0 and (not lines[j].strip() or MARKER.match(lines[j])):
            m = MARKER.match(lines[j])
            if m:
                markers.add(m.group(1))
            j -= 1
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        out.append(Block(path, i + 2, "\n".join(lines[i + 1 : end]) + "\n", markers))
        i = end + 1
    return out


FILES = [p for p in DOCS if blocks_of(p)]
IDS = [str(p.relative_to(REPO)) for p in FILES]

RUNNER = """
import ast, asyncio, inspect, json, sys

blocks = json.load(open(sys.argv[1], encoding="utf-8"))
ns = {"__name__": "__main__"}
loop = None
for b in blocks:
    print(f"-- {b['where']}", flush=True)
    source = "\\n" * (b["line"] - 1) + b["code"]  # tracebacks point into the .md file
    code = compile(source, b["file"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        loop = loop or asyncio.new_event_loop()
        loop.run_until_complete(eval(code, ns))
    else:
        exec(code, ns)
"""


def test_the_docs_have_python_examples() -> None:
    assert REPO / "README.md" in FILES
    assert len(blocks_of(REPO / "README.md")) >= 2


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_markers_are_known(path: Path) -> None:
    for block in blocks_of(path):
        assert block.markers <= KNOWN_MARKERS, f"{block.where}: unknown marker {block.markers}"


def run_session(blocks: list[Block], cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run the blocks in a fresh interpreter in ``cwd``; their output, or pytest.fail."""
    spec = [{"file": str(b.path), "where": b.where, "line": b.line, "code": b.code} for b in blocks]
    (cwd / "blocks.json").write_text(json.dumps(spec), encoding="utf-8")
    (cwd / "run_blocks.py").write_text(RUNNER, encoding="utf-8")
    try:
        proc = subprocess.run(
            [sys.executable, "run_blocks.py", "blocks.json"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        last = out.strip().splitlines()[-1:] or ["(none)"]
        pytest.fail(f"a block did not finish in {timeout}s; last started: {last[0]}", False)
    if proc.returncode != 0:
        pytest.fail(proc.stdout + proc.stderr, pytrace=False)
    return proc.stdout


def user_env() -> dict[str, str]:
    """The environment of a user's shell: no paths into the repository."""
    drop = ("PYTHONPATH", "MYPYPATH", "DATABASE_URL")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_blocks_run(path: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = blocks_of(path)
    env = user_env()
    if any("requires postgres" in b.markers for b in blocks):
        env["DATABASE_URL"] = request.getfixturevalue("pg_dsn")
    run_session(blocks, tmp_path, env, RUN_TIMEOUT)


def as_module(blocks: list[Block]) -> tuple[str, list[str]]:
    """One module of the file's blocks, and for each of its lines where it came from.

    When a block awaits at top level, the whole session becomes the body of
    one ``async def``, so that names still flow from block to block.
    """
    wrap = any(b.awaits for b in blocks)
    lines: list[str] = []
    where: list[str] = []
    if wrap:
        lines.append("async def _doc_session() -> None:")
        where.append(blocks[0].where)
    for b in blocks:
        body = b.code.splitlines()
        if wrap:
            body = [("    " + text) if text.strip() else "" for text in body]
        lines.append(("    " if wrap else "") + f"# {b.where}")
        where.append(b.where)
        for k, text in enumerate(body):
            lines.append(text)
            where.append(f"{b.name}:{b.line + k}")
    return "\n".join(lines) + "\n", where


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def type_check(blocks: list[Block], cwd: Path, cache: Path) -> None:
    """mypy --strict on the blocks as one module in ``cwd``, or pytest.fail with .md lines."""
    source, where = as_module(blocks)
    module = cwd / "doc_blocks.py"
    module.write_text(source, encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            # Independent examples in one file may each define main().
            "--disable-error-code",
            "no-redef",
            "--cache-dir",
            str(cache),
            module.name,
        ],
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        mapped = []
        for line in proc.stdout.splitlines():
            m = re.match(r"doc_blocks\.py:(\d+): (.*)", line)
            mapped.append(f"{where[int(m.group(1)) - 1]}: {m.group(2)}" if m else line)
        pytest.fail("\n".join(mapped) + proc.stderr, pytrace=False)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_blocks_type_check(path: Path, tmp_path: Path, mypy_cache: Path) -> None:
    type_check(blocks_of(path), tmp_path, mypy_cache)


# -- the checks can fail ---------------------------------------------------------------

SAMPLE = """# A page

Some text.

<!-- docs: requires postgres -->
```python
import anyio
total = 1
```

```python
total += await anyio.to_thread.run_sync(lambda: 1)
{tail}
```
"""


def sample(tmp_path: Path, tail: str) -> list[Block]:
    page = tmp_path / "page.md"
    page.write_text(SAMPLE.format(tail=tail), encoding="utf-8")
    return blocks_of(page)


def test_blocks_are_parsed_with_their_markers(tmp_path: Path) -> None:
    blocks = sample(tmp_path, "assert total == 2")
    assert [(b.line, b.markers, b.awaits) for b in blocks] == [
        (7, {"requires postgres"}, False),
        (12, set(), True),
    ]


def test_a_failing_block_fails_with_its_line(tmp_path: Path) -> None:
    run_session(sample(tmp_path, "assert total == 2"), tmp_path, user_env(), 60)
    with pytest.raises(pytest.fail.Exception, match=r"page\.md.*line 13"):
        run_session(sample(tmp_path, "assert total == 3"), tmp_path, user_env(), 60)


def test_a_block_that_never_ends_fails(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"did not finish.*page\.md:12"):
        run_session(sample(tmp_path, "await anyio.sleep_forever()"), tmp_path, user_env(), 3)


def test_a_mistyped_block_fails_with_its_line(tmp_path: Path, mypy_cache: Path) -> None:
    type_check(sample(tmp_path, "assert total == 2"), tmp_path, mypy_cache)
    with pytest.raises(pytest.fail.Exception, match=r"page\.md:13: error: Incompatible"):
        type_check(sample(tmp_path, 'total = "two"'), tmp_path, mypy_cache)

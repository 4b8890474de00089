"""A user's code type-checks under ``mypy --strict`` with no annotations of its own.

Each test writes a small module into a temporary directory outside the
repository and runs the venv's mypy on it there, as a user would: this also
proves that mypy finds the installed (editable) evsrc, which an import-hook
editable install hides from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

DOMAIN = """
from __future__ import annotations

from evsrc import Aggregate, Decision, Event, Rejection, applies


class Deposited(Event, type="t.deposited"):
    amount: int


class Withdrawn(Event, type="t.withdrawn"):
    amount: int


class Account(Aggregate):
    stream_prefix = "account"

    def __init__(self) -> None:
        super().__init__()
        self.balance = 0

    @applies
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount

    @applies
    def _withdrawn(self, e: Withdrawn) -> None:
        self.balance -= e.amount

    def deposit(self, amount: int) -> list[Event]:
        return [Deposited(amount=amount)]

    def withdraw(self, amount: int) -> list[Event] | Rejection[int]:
        if amount > self.balance:
            return Rejection("insufficient funds", self.balance)
        return [Withdrawn(amount=amount)]

    def spend(self, amount: int) -> Decision[int] | Rejection:
        if amount > self.balance:
            return Rejection("insufficient funds")
        return Decision([Withdrawn(amount=amount)], self.balance - amount)
"""


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def run_mypy(directory: Path, cache: Path, *files: str) -> tuple[int, str]:
    assert not directory.resolve().is_relative_to(REPO), "must run outside the repository"
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), *files],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def revealed(out: str) -> list[str]:
    """The types of ``reveal_type`` notes, in order (``builtins.`` dropped, as newer mypy does)."""
    lines = out.splitlines()
    notes = [line.split("Revealed type is ", 1)[1] for line in lines if "Revealed" in line]
    return [n.strip('"').removeprefix("builtins.") for n in notes]


def write(directory: Path, name: str, source: str) -> None:
    (directory / name).write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")


def test_mypy_finds_the_installed_package(tmp_path: Path, mypy_cache: Path) -> None:
    write(
        tmp_path,
        "user.py",
        """
        from evsrc import InMemorySnapshotStore, RetryPolicy
        from evsrc.memory import InMemoryEventStore

        store = InMemoryEventStore()
        policy = RetryPolicy(max_attempts=3)
        reveal_type(policy.max_attempts)
        reveal_type(InMemorySnapshotStore())
        """,
    )
    code, out = run_mypy(tmp_path, mypy_cache, "user.py")
    assert "Cannot find implementation or library stub" not in out, out
    assert code == 0, out
    assert revealed(out) == ["int", "evsrc.snapshot.InMemorySnapshotStore"], out


def test_outcomes_are_typed_without_annotations(tmp_path: Path, mypy_cache: Path) -> None:
    write(tmp_path, "domain.py", DOMAIN)
    write(
        tmp_path,
        "app.py",
        """
        from evsrc import CommandHandler
        from evsrc.memory import InMemoryEventStore

        from domain import Account


        async def main() -> None:
            handler = CommandHandler(InMemoryEventStore(), Account)
            out = await handler.execute("a", lambda a: a.withdraw(5))
            if out.ok:
                reveal_type(out.result)
            else:
                reveal_type(out.rejection.detail)
            plain = await handler.execute("a", lambda a: a.deposit(5))
            reveal_type(plain.result)
            spent = await handler.execute("a", lambda a: a.spend(5))
            if spent.ok:
                reveal_type(spent.result)
            else:
                print(spent.rejection.reason)
            state = await handler.load("a")
            reveal_type(state)
        """,
    )
    code, out = run_mypy(tmp_path, mypy_cache, "domain.py", "app.py")
    assert code == 0, out
    assert revealed(out) == ["None", "int", "None", "int", "domain.Account"], out


def test_misuse_is_caught(tmp_path: Path, mypy_cache: Path) -> None:
    """The checks above can fail: unnarrowed access and a lying Decision are errors."""
    write(tmp_path, "domain.py", DOMAIN)
    write(
        tmp_path,
        "bad.py",
        """
        from evsrc import CommandHandler, Decision, Event
        from evsrc.memory import InMemoryEventStore

        from domain import Account


        def lies() -> Decision[int]:
            return Decision([])


        async def main() -> None:
            handler = CommandHandler(InMemoryEventStore(), Account)
            out = await handler.execute("a", lambda a: a.spend(5))
            total: int = out.result
            print(out.rejection.reason)
        """,
    )
    code, out = run_mypy(tmp_path, mypy_cache, "domain.py", "bad.py")
    assert code == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert any("bad.py:8:" in e for e in errors), out  # Decision[None] is not Decision[int]
    assert any("bad.py:14:" in e for e in errors), out  # result may be None
    assert any("bad.py:15:" in e for e in errors), out  # rejection may be None

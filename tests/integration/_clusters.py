"""Throwaway PostgreSQL clusters for tests that need a server of their own.

Made with Debian's ``pg_createcluster`` on the ports and names reserved for
these tests (``evsrc13_*``, 5441–5445) and always dropped, even when the test
fails. Without the tools the test is skipped — except under ``CI=true``,
where that is a failure: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

VERSION = "15"
PREFIX = "evsrc13_"
BIN = f"/usr/lib/postgresql/{VERSION}/bin"


def _need_tools() -> None:
    tools = ("pg_createcluster", "pg_dropcluster", "pg_ctlcluster")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        reason = f"needs Debian's postgresql-common tools ({', '.join(missing)} missing)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)


def client(*cmd: str) -> subprocess.CompletedProcess[str]:
    """Run a client tool (``pg_dump``, ``pg_restore``); fail with its output if it fails."""
    result = _run(*cmd)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {result.stdout}{result.stderr}")
    return result


def as_postgres(*cmd: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as the postgres OS user (the server and its tools refuse root)."""
    if os.geteuid() == 0:
        cmd = ("runuser", "-u", "postgres", "--", *cmd)
    result = _run(*cmd)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {result.stdout}{result.stderr}")
    return result


def drop(name: str) -> None:
    """Stop and drop cluster ``name`` if it exists (quietly)."""
    _run("pg_dropcluster", VERSION, name, "--stop")


def wait_ready(port: int) -> None:
    """Wait until the cluster on ``port`` accepts connections."""
    deadline = time.monotonic() + 30
    while _run(f"{BIN}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster on port {port} did not start")
        time.sleep(0.1)


@contextmanager
def cluster(name: str, port: int, *initdb_args: str) -> Iterator[str]:
    """A fresh cluster ``evsrc13_<name>`` on ``port``; yields its admin DSN; dropped on exit."""
    _need_tools()
    full = PREFIX + name
    drop(full)  # a leftover of an interrupted run
    try:
        result = _run(
            "pg_createcluster", VERSION, full, "-p", str(port), "--start", "--",
            *(initdb_args or ("--auth=trust",)),
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"pg_createcluster {full} failed: {result.stdout}{result.stderr}")
        wait_ready(port)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        drop(full)


def data_directory(name: str) -> str:
    """The data directory of cluster ``evsrc13_<name>``."""
    return f"/var/lib/postgresql/{VERSION}/{PREFIX}{name}"


def stop(name: str) -> None:
    """Stop cluster ``evsrc13_<name>``."""
    as_postgres("pg_ctlcluster", VERSION, PREFIX + name, "stop", "-m", "fast")


def start(name: str, port: int) -> None:
    """Start cluster ``evsrc13_<name>`` and wait for it."""
    as_postgres("pg_ctlcluster", VERSION, PREFIX + name, "start")
    wait_ready(port)

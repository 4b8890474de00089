"""Throwaway PostgreSQL clusters for the replication and failover tests.

Each cluster is a data directory under a temporary directory, its server
listening on 127.0.0.1 only, on a port given by the test. The server refuses
to run as root, so every server command runs as the ``postgres`` user
(``runuser``) when the tests run as root. ``ClusterSet`` stops and removes
everything it made, whatever happens to the test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries directory on this machine, if any."""
    for candidate in _BIN_CANDIDATES:
        if (candidate / "initdb").exists() and (candidate / "pg_basebackup").exists():
            return candidate
    return None


def require_pg_bin() -> Path:
    """The server binaries, or skip (fail under CI=true) with how to get them."""
    found = pg_bin()
    if found is None:
        msg = (
            "these tests build local PostgreSQL clusters and need the server binaries "
            "(apt-get install postgresql)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return found


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


class Cluster:
    """One local server: ``initdb``'d fresh, or a ``pg_basebackup`` of another."""

    def __init__(self, root: Path, name: str, port: int, bin_dir: Path) -> None:
        self.name = name
        self.port = port
        self.data = root / name
        self.log = root / f"{name}.log"
        self.socket_dir = root
        self._bin = bin_dir

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [*_as_postgres(), str(self._bin / args[0]), *args[1:]]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)

    def _settings(self, extra: dict[str, str]) -> None:
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "wal_level": "replica",
            "max_wal_senders": "8",
            "max_replication_slots": "8",
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            "wal_keep_size": "'256MB'",
            "shared_buffers": "'64MB'",
            "max_connections": "60",
            # The tests kill processes, not machines: the OS keeps what was written.
            "fsync": "off",
            "full_page_writes": "off",
            "log_min_messages": "warning",
            "logging_collector": "off",
        }
        settings.update(extra)
        with (self.data / "postgresql.auto.conf").open("a") as f:
            for key, value in settings.items():
                f.write(f"{key} = {value}\n")

    def init(self, **settings: str) -> Cluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._settings(settings)
        return self

    def basebackup_of(self, primary: Cluster, **settings: str) -> Cluster:
        """Make this cluster a streaming standby of ``primary`` (named ``self.name``)."""
        conninfo = f"host=127.0.0.1 port={primary.port} user=postgres application_name={self.name}"
        self._run(
            "pg_basebackup", "-d", conninfo, "-D", str(self.data), "-X", "stream", "-R", "-c",
            "fast",
        )  # fmt: skip
        self._settings(settings)
        return self

    def start(self) -> Cluster:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def promote(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill9(self) -> None:
        """SIGKILL the postmaster and every server process of this cluster (a dead machine)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        for p in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = False
            for p in [pid, *map(int, children)]:
                try:
                    os.kill(p, 0)
                    alive = True
                except ProcessLookupError:
                    pass
            if not alive:
                return
            time.sleep(0.05)

    def psql(self, sql: str) -> str:
        return self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
            "-AtX", "-c", sql,
        ).stdout.strip()  # fmt: skip


class ClusterSet:
    """Clusters in one temporary directory; ``close()`` kills and removes them all."""

    def __init__(self, prefix: str = "evsrc-clusters-") -> None:
        self.bin = require_pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.clusters: list[Cluster] = []

    def new(self, name: str, port: int) -> Cluster:
        cluster = Cluster(self.root, name, port, self.bin)
        self.clusters.append(cluster)
        return cluster

    def close(self) -> None:
        for cluster in self.clusters:
            cluster.stop("immediate")
            cluster.kill9()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        """The tail of every cluster's log, for a failing test's report."""
        out = []
        for cluster in self.clusters:
            with contextlib.suppress(OSError):
                out.append(f"--- {cluster.name}\n" + cluster.log.read_text()[-3000:])
        return "\n".join(out)

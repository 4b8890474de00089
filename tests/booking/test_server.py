"""``python -m examples.booking serve`` as a real process: secrets, restarts, logs, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx

from tests.booking._serve import ROOT, _env, _free_port, server
from tests.booking.conftest import SECRET, token

ADMIN, ANN, BOB = token("root", admin=True), token("ann"), token("bob")


def test_serve_refuses_to_start_without_a_secret(tmp_path):
    for env in (_env(tmp_path), _env(tmp_path, EVSRC_BOOKING_SECRET="too-short")):
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "examples.booking",
                "serve",
                "--store",
                "memory:",
                "--port",
                str(_free_port()),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert p.returncode == 2, p.stderr
        assert "EVSRC_BOOKING_SECRET" in p.stderr


def test_insecure_no_auth_warns_and_serves(tmp_path):
    with server("memory:", _env(tmp_path), "--insecure-no-auth") as (base, proc):
        r = httpx.post(base + "/book", json={"occurrence": "x", "actor": "a", "capacity": 1})
        assert r.status_code == 201
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        err = proc.stderr.read()
    assert "WARNING: serving WITHOUT authentication" in err


def test_a_restarted_server_keeps_its_bookings(durable_url, tmp_path):
    env = _env(tmp_path, EVSRC_BOOKING_SECRET=SECRET)
    with server(durable_url, env) as (base, proc):
        r = httpx.post(
            base + "/schedule", json={"occurrence": "yoga", "capacity": 2}, headers=ADMIN
        )
        assert r.status_code == 201, r.text
        r = httpx.post(base + "/book", json={"occurrence": "yoga"}, headers=ANN)
        assert (r.status_code, r.json()["seat"]) == (201, 1)
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown at all: what was acknowledged is kept
        proc.wait(timeout=30)
    with server(durable_url, env) as (base, proc):
        r = httpx.get(base + "/roster", params={"occurrence": "yoga"}, headers=BOB)
        assert (r.json()["roster"], r.json()["capacity"]) == (["ann"], 2)
        r = httpx.post(base + "/book", json={"occurrence": "yoga"}, headers=BOB)
        assert (r.status_code, r.json()["seat"]) == (201, 2)
        r = httpx.post(base + "/book", json={"occurrence": "yoga"}, headers=ANN)
        assert (r.status_code, r.json()["status"]) == (200, "already")


def test_request_ids_json_logs_metrics_and_readiness(tmp_path):
    env = _env(tmp_path, EVSRC_BOOKING_SECRET=SECRET)
    with server("memory:", env) as (base, proc):
        httpx.post(base + "/schedule", json={"occurrence": "yoga", "capacity": 1}, headers=ADMIN)
        r = httpx.post(
            base + "/book", json={"occurrence": "yoga"}, headers={**ANN, "X-Request-Id": "req-42"}
        )
        assert r.headers["x-request-id"] == "req-42"
        r = httpx.post(base + "/book", json={"occurrence": "yoga"}, headers=BOB)
        assert r.json()["status"] == "full"
        generated = r.headers["x-request-id"]
        assert len(generated) == 32
        r = httpx.post(base + "/book", content=b"{", headers={**BOB, "X-Request-Id": "bad id!"})
        assert r.headers["x-request-id"] != "bad id!"  # an unsafe id is replaced

        r = httpx.get(base + "/ready")
        assert (r.status_code, r.json()["status"]) == (200, "ready"), r.text
        text = httpx.get(base + "/metrics").text
        for line in (
            'booking_commands_total{command="book",status="booked"} 1.0',
            'booking_commands_total{command="book",status="full"} 1.0',
            'booking_commands_total{command="schedule",status="created"} 1.0',
            "booking_append_batch_events_count 2.0",
            "booking_append_seconds_count 2.0",
            "booking_retries_total 0.0",
            "booking_append_conflicts_total 0.0",
            'booking_http_requests_total{method="POST",route="/book",status="409"} 1.0',
            "booking_projection_lag_events 0.0",
        ):
            assert line in text, line
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        logs = [
            json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")
        ]
    requests = [entry for entry in logs if entry["msg"] == "request"]
    mine = [entry for entry in requests if entry.get("request_id") == "req-42"]
    assert len(mine) == 1
    assert mine[0] | {"duration_ms": 0, "ts": ""} == {
        "ts": "",
        "level": "info",
        "logger": "examples.booking",
        "msg": "request",
        "request_id": "req-42",
        "method": "POST",
        "path": "/book",
        "route": "/book",
        "status": 201,
        "duration_ms": 0,
    }
    assert any(entry.get("request_id") == generated for entry in requests)


def test_events_stream_the_board_live(tmp_path):
    env = _env(tmp_path, EVSRC_BOOKING_SECRET=SECRET)
    with server("memory:", env) as (base, _proc):
        httpx.post(base + "/schedule", json={"occurrence": "yoga", "capacity": 3}, headers=ADMIN)
        with httpx.stream("GET", base + "/events", headers=BOB, timeout=20) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = (line for line in r.iter_lines() if line.startswith("data: "))

            def board() -> dict:
                return json.loads(next(lines)[len("data: ") :])

            first = board()
            while first["occurrences"] == []:  # the board may not have folded the schedule yet
                first = board()
            assert first["you"] == {"actor": "bob", "admin": False}
            assert first["occurrences"][0]["seats_left"] == 3
            httpx.post(base + "/book", json={"occurrence": "yoga"}, headers=ANN)
            update = board()
            assert update["occurrences"][0]["seats_left"] == 2
            assert update["occurrences"][0]["your_seat"] is None  # ann's seat, not bob's


def test_serve_with_a_bad_store_url_fails_before_listening(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "examples.booking", "serve", "--store", "ftp://example.org/db"],
        cwd=ROOT,
        env=_env(tmp_path, EVSRC_BOOKING_SECRET=SECRET),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 2
    assert "unknown store URL scheme 'ftp'" in p.stderr
    assert "Traceback" not in p.stderr

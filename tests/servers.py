"""Real local peers for the DLQ tests: the Pushgateway binary, an alert-webhook receiver, an audit backend.

Each listens on 127.0.0.1 on a free port and records what it got; none of them is our code under test.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

PUSHGATEWAY_BINARY = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Pushgateway:
    """The real ``prometheus-pushgateway`` (persistence off), started on a free loopback port."""

    def __init__(self, log_dir: Path) -> None:
        if PUSHGATEWAY_BINARY is None:
            raise RuntimeError("prometheus-pushgateway is not installed (.ci/run installs it)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (log_dir / "pushgateway.log").open("wb")
        self._process = subprocess.Popen(
            [PUSHGATEWAY_BINARY, f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-admin-api"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the Pushgateway did not become ready within 30 s")

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def samples(self, name: str) -> dict[str, float]:
        """``{label text: value}`` of every sample of ``name`` pushed by the sweep job."""
        found: dict[str, float] = {}
        for line in self.metrics().splitlines():
            if line.startswith(name + "{") and 'job="oms_audit_dlq_sweep"' in line:
                labels, value = line.rsplit(" ", 1)
                found[labels[len(name) :]] = float(value)
        return found

    def wipe(self) -> None:
        reply = httpx.put(f"{self.url}/api/v1/admin/wipe", timeout=5)
        assert reply.status_code == 202, reply.text

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        self._log.close()


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.fail_with: int | None = None


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class WebhookReceiver(_Recorder):
    """Records every JSON body POSTed; answers ``fail_with`` (e.g. 500) instead of 200 when set."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        super().__init__(_WebhookHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/hooks/s3cr3t-path-token"


class _WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.attempts += 1
            status = self.server.fail_with or 200
            if status == 200:
                self.server.received.append(json.loads(body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class AuditBackend(_Recorder):
    """An ``AUDIT_BACKEND_URL`` peer: stores events by ``event_id`` (idempotent), rejects ``reject`` ids
    individually, answers ``fail_with`` for the whole batch when set. ``stored_again`` counts deliveries of
    an id already stored (at-least-once delivery: harmless, but visible). ``GET`` answers the audit-log
    query (``limit``, ``actor``, ``resource_type``, ``since``, ``cursor``; newest first) and records its
    parameters in ``queries``."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: Counter[str] = Counter()
        self.reject: dict[str, str] = {}
        self.batches = 0
        self.queries: list[dict[str, str]] = []
        super().__init__(_BackendHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/audit/events"


class _BackendHandler(BaseHTTPRequestHandler):
    server: AuditBackend

    def do_GET(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        with self.server.lock:
            self.server.queries.append(query)
            status = self.server.fail_with
            events = sorted(self.server.events.values(), key=lambda e: (e["occurred_at"], e["event_id"]), reverse=True)
        limit = int(query.get("limit", "50"))
        matching = [
            e
            for e in events
            if query.get("actor") in (None, e["actor"]["id"])
            and query.get("resource_type") in (None, e.get("resource_type"))
            and ("since" not in query or e["occurred_at"] >= query["since"])
            and ("cursor" not in query or f"{e['occurred_at']}|{e['event_id']}" < query["cursor"])
        ]
        page = matching[:limit]
        more = len(matching) > limit
        cursor = f"{page[-1]['occurred_at']}|{page[-1]['event_id']}" if more else None
        reply = json.dumps({"events": page, "next_cursor": cursor}).encode()
        self.send_response(status or 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            status = self.server.fail_with
            rejected: dict[str, str] = {}
            if status is None:
                self.server.batches += 1
                for event in json.loads(body)["events"]:
                    event_id = event["event_id"]
                    if event_id in self.server.reject:
                        rejected[event_id] = self.server.reject[event_id]
                        continue
                    self.server.deliveries[event_id] += 1
                    self.server.events.setdefault(event_id, event)
        reply = json.dumps({"rejected": rejected}).encode()
        self.send_response(status or 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass

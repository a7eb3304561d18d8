"""Fault injection at /_sandbox/faults: injected statuses, delays and dropped connections."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sandbox.server import SandboxServer


def test_status_fault_after_n_requests(
    sandbox: SandboxServer, admin_http: httpx.Client, faults: Callable[..., dict]
) -> None:
    faults(method="GET", path_prefix="/api/info", action="status", status=503, after=2, times=1)
    statuses = [admin_http.get("/api/info").status_code for _ in range(4)]
    assert statuses == [200, 200, 503, 200]
    assert admin_http.get("/api/ok").status_code == 200


def test_status_fault_reply_is_json(admin_http: httpx.Client, faults: Callable[..., dict]) -> None:
    faults(path_prefix="/api/db", action="status", status=500, times=2)
    first = admin_http.get("/api/db")
    assert first.status_code == 500
    assert first.headers["content-type"].startswith("application/json")
    assert admin_http.get("/api/db").status_code == 500
    assert admin_http.get("/api/db").status_code == 200


def test_fault_only_matches_its_method(admin_http: httpx.Client, faults: Callable[..., dict]) -> None:
    faults(method="POST", path_prefix="/api/info", action="status", status=503)
    assert admin_http.get("/api/info").status_code == 200


def test_delay_fault(admin_http: httpx.Client, faults: Callable[..., dict]) -> None:
    faults(path_prefix="/api/info", action="delay", seconds=2.0)
    with pytest.raises(httpx.ReadTimeout):
        admin_http.get("/api/info", timeout=0.3)


def test_drop_fault_closes_connection(admin_http: httpx.Client, faults: Callable[..., dict]) -> None:
    faults(path_prefix="/api/info", action="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        admin_http.get("/api/info")
    assert admin_http.get("/api/info").status_code == 200


def test_list_clear_and_validation(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url) as client:
        assert client.post("/_sandbox/faults", json={"action": "status", "times": 5}).status_code == 200
        assert client.get("/_sandbox/faults").json()[0]["times"] == 5
        assert client.delete("/_sandbox/faults").status_code == 200
        assert client.get("/_sandbox/faults").json() == []
        bad = client.post("/_sandbox/faults", json={"action": "explode"})
        assert bad.status_code == 400
        assert "action" in bad.json()["error"]

"""The HTTP surface around the endpoints: internal failures always get a JSON reply, TerminusDB's 405 /
missing-content-type / invalid-JSON replies (also on routes the sandbox does not implement), and /api/info."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable

import httpx
import pytest

from sandbox.server import SandboxServer

COMMIT = {"author": "tester", "message": "test"}


def _assert_internal_error(reply: httpx.Response) -> None:
    assert reply.status_code == 500
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["@type"] == "api:ErrorResponse"
    assert body["api:status"] == "api:server_error"
    assert body["api:error"] == {"@type": "api:InternalServerError"}
    assert "bug in the sandbox" in body["api:message"]


# ------------------------------------------------------------------------------------- item 1: never drop


def test_a_handler_that_raises_gets_a_json_500_and_the_connection_survives(
    admin_http: httpx.Client, fresh_db: str, faults: Callable[..., dict]
) -> None:
    faults(action="raise", method="POST", path_prefix="/api/document/", error="internal")
    reply = admin_http.post(f"/api/document/admin/{fresh_db}", params=COMMIT, json=[])
    _assert_internal_error(reply)
    # the same keep-alive connection answers the next request normally
    assert admin_http.post(f"/api/document/admin/{fresh_db}", params=COMMIT, json=[]).status_code == 200


def test_an_error_that_cannot_be_rendered_still_gets_a_json_500(
    admin_http: httpx.Client, fresh_db: str, faults: Callable[..., dict]
) -> None:
    """The original failure: a witness holding a value JSON cannot encode made the server drop the socket."""
    faults(action="raise", method="GET", path_prefix="/api/document/", error="unrenderable")
    _assert_internal_error(admin_http.get(f"/api/document/admin/{fresh_db}"))
    assert admin_http.get(f"/api/document/admin/{fresh_db}").status_code == 200


def test_raise_fault_rule_validation(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url) as client:
        bad = client.post("/_sandbox/faults", json={"action": "raise", "error": "explode"})
        assert bad.status_code == 400
        assert "'error' must be one of" in bad.json()["error"]
        client.delete("/_sandbox/faults")


# ------------------------------------------------------------------------------------- item 8: HTTP errors


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/ok"),
        ("PUT", "/api/ok"),
        ("PUT", "/api/db/u/d"),
        ("GET", "/api/optimize/"),
        ("PUT", "/api/optimize/"),
        ("GET", "/api/reset/"),
        ("PUT", "/api/reset/"),
        ("GET", "/api/woql"),
        ("PUT", "/api/woql"),
        ("GET", "/api/rebase/admin/x"),
        ("DELETE", "/api/clone/admin/x"),
    ],
)
def test_unsupported_method_on_a_known_route_is_405(sandbox: SandboxServer, method: str, path: str) -> None:
    reply = httpx.request(method, sandbox.url + path, auth=("admin", "root"))
    assert reply.status_code == 405
    assert reply.json()["api:status"] == "api:method_not_allowed"


@pytest.mark.parametrize("path", ["/api/optimize", "/api/rebase", "/api/schema", "/api/triples", "/api/abc"])
def test_route_prefix_without_resource_is_404(sandbox: SandboxServer, path: str) -> None:
    reply = httpx.get(sandbox.url + path, auth=("admin", "root"))
    assert reply.status_code == 404
    assert reply.json() == {"api:status": "api:not_found", "api:path": path, "api:message": f"Path not found: {path}"}


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/woql"), ("POST", "/api/rebase/admin/x/local/branch/main")])
def test_missing_content_type_on_json_routes_the_sandbox_lacks(sandbox: SandboxServer, method: str, path: str) -> None:
    reply = httpx.request(method, sandbox.url + path, auth=("admin", "root"), content=b"{}")
    assert reply.status_code == 400
    body = reply.json()
    assert body["@type"] == "api:MissingContentTypeErrorResponse"
    assert body["api:status"] == "api:failure"


@pytest.mark.parametrize("path", ["/api/woql", "/api/rebase/admin/x/local/branch/main", "/api/db/admin/{db}"])
def test_invalid_json_echoes_the_raw_body(sandbox: SandboxServer, path: str) -> None:
    url = sandbox.url + path.format(db="r" + uuid.uuid4().hex[:8])
    reply = httpx.post(
        url, auth=("admin", "root"), params=COMMIT, content=b"{{", headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "api:status": "api:failure",
        "api:message": "Submitted object was not valid JSON",
        "system:object": "{{",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/woql"),
        ("POST", "/api/woql/admin/x"),
        ("POST", "/api/rebase/admin/x/local/branch/main"),
        ("POST", "/api/optimize/admin/x"),
        ("GET", "/api/triples/admin/x/local/branch/main/instance"),
        ("GET", "/api/schema/admin/x"),
        ("POST", "/api/clone/admin/x"),
    ],
)
def test_routes_the_sandbox_does_not_implement_say_so(sandbox: SandboxServer, method: str, path: str) -> None:
    reply = httpx.request(method, sandbox.url + path, auth=("admin", "root"), json={"query": {}})
    assert reply.status_code == 501
    body = reply.json()
    assert body["@type"] == "api:ErrorResponse"
    assert body["api:error"] == {"@type": "api:NotSupportedBySandbox", "api:method": method, "api:path": path}
    assert "does not implement" in body["api:message"]


# ------------------------------------------------------------------------------------- item 10: /api/info


@pytest.mark.parametrize(
    ("auth", "authority"),
    [(("admin", "root"), "terminusdb://system/data/User/admin"), (None, "terminusdb://system/data/User/anonymous")],
)
def test_info_has_terminusdb_shape(sandbox: SandboxServer, auth: tuple[str, str] | None, authority: str) -> None:
    reply = httpx.get(sandbox.url + "/api/info", auth=auth)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"@type", "api:info", "api:status"}
    assert body["@type"] == "api:InfoResponse"
    assert body["api:status"] == "api:success"
    info = body["api:info"]
    assert set(info) == {"authority", "storage", "terminusdb", "terminusdb_store"}
    assert info["authority"] == authority
    assert set(info["terminusdb"]) == {"version", "git_hash"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["terminusdb"]["version"])
    assert re.fullmatch(r"[0-9a-f]{40}", info["terminusdb"]["git_hash"])
    assert set(info["storage"]) == {"version"} and isinstance(info["storage"]["version"], str)
    assert info["storage"]["version"]
    assert set(info["terminusdb_store"]) == {"version"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["terminusdb_store"]["version"])


def test_info_with_bad_credentials_is_401(sandbox: SandboxServer) -> None:
    reply = httpx.get(sandbox.url + "/api/info", auth=("admin", "wrong"))
    assert reply.status_code == 401
    assert reply.json()["api:error"] == {"@type": "api:IncorrectAuthenticationError"}


def test_malformed_chunked_body_gets_a_json_400(sandbox: SandboxServer) -> None:
    with socket.create_connection((sandbox.host, sandbox.port), timeout=10) as conn:
        conn.sendall(
            b"POST /api/db/admin/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        )
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/json" in head
    assert b"could not be read" in body

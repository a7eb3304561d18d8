"""The Prefect API a command talks to: the configured one, or a temporary local one this CLI starts.

With no ``PREFECT_API_URL``, Prefect would start its temporary ("ephemeral") server itself, on first use, in
this process's group, and only once something asks for it. Starting it here instead changes three things:

- **it starts at once, in parallel**: :func:`start_prefect_api` launches the server and returns; the caller
  imports Prefect and the flows (seconds of CPU) while it boots, and :meth:`PrefectApi.wait` waits for it;
- **Ctrl-C does not kill it**: it runs in its own process group, so the terminal's SIGINT reaches the CLI only,
  which can still record what happened through the API before it stops the server;
- **the next command reuses it**: it stays up ``OMS_AUDIT_LOCAL_API_IDLE_SECONDS`` (default 600) after the
  last request and is found again through a small state file in ``PREFECT_HOME``, so only the first of a
  series of commands pays for the start. ``0`` stops it with the command that started it.

Nothing here imports Prefect: that is the point of the module.
"""

from __future__ import annotations

import atexit
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from cli import local_state
from cli.local_state import prefect_home

IDLE_VARIABLE = "OMS_AUDIT_LOCAL_API_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 600.0
STARTUP_TIMEOUT_SECONDS = 120.0


def idle_seconds() -> float:
    return local_state.idle_seconds(
        IDLE_VARIABLE, DEFAULT_IDLE_SECONDS, "0 stops the temporary Prefect API with the command that started it"
    )


def _healthy(api_url: str, timeout: float = 1.0) -> bool:
    try:
        reply = httpx.get(f"{api_url}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrefectApi:
    """The API this process uses; ``process`` is set when this process started it (and must wait for it)."""

    url: str
    origin: str
    """``configured`` (PREFECT_API_URL), ``reused`` (a local API a previous command left running), ``started``
    (by this process), or ``prefect`` (Prefect was imported first, so its own temporary server is used)."""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _ready: bool = field(default=False, repr=False)

    def wait(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> str:
        """Block until the API answers (only a server started here can still be starting)."""
        if self.origin == "prefect":
            self.url = _prefect_ephemeral_url()
        if self._ready or self.process is None:
            self._ready = True
            return self.url
        deadline = time.monotonic() + timeout
        while not _healthy(self.url, timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path else ""
                state = "exited" if self.process.poll() is not None else f"did not answer within {timeout:.0f} s"
                raise RuntimeError(f"the temporary Prefect API {state}; its output:\n{tail}")
            time.sleep(0.05)
        self._ready = True
        return self.url

    def stop(self) -> None:
        """Stop a server started here that is not meant to be reused (idle lifetime 0)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


_current: PrefectApi | None = None


def _prefect_ephemeral_url() -> str:
    """Prefect's own temporary server, started once here in the main thread (its start is not thread-safe)."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def _configured_url() -> str:
    """``PREFECT_API_URL`` as Prefect sees it: from its settings once it is imported (a test harness's
    temporary settings may set it), else from the environment, else from the active Prefect profile."""
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        return str(PREFECT_API_URL.value() or "").strip()
    return local_state.configured_api_url()


def _setting(name: str) -> str:
    return os.environ.get(name, "").strip() or local_state.profile_setting(name)


def _auth_headers() -> dict[str, str]:
    """The credentials Prefect's client would send: ``PREFECT_API_KEY`` (Cloud) or ``PREFECT_API_AUTH_STRING``."""
    key, auth_string = _setting("PREFECT_API_KEY"), _setting("PREFECT_API_AUTH_STRING")
    if key:
        return {"Authorization": f"Bearer {key}"}
    if auth_string:
        return {"Authorization": f"Basic {base64.b64encode(auth_string.encode()).decode('ascii')}"}
    return {}


def block_document_exists(block_type_slug: str, name: str) -> bool | None:
    """Whether the API this process uses has the block document, with one GET and without Prefect.

    Only for an API that already answers (configured, or a temporary one reused): one this process just
    started would have to be waited for, which is what the caller wanted to avoid. None whenever the answer
    is not a plain yes or no (no such API, down, credentials refused, anything odd): the caller then goes the
    usual way, through Prefect, which reports those problems itself.
    """
    api = start_prefect_api()
    if api.origin not in ("configured", "reused") or not api.url:
        return None
    url = f"{api.url.rstrip('/')}/block_types/slug/{quote(block_type_slug)}/block_documents/name/{quote(name)}"
    try:
        reply = httpx.get(url, headers=_auth_headers(), timeout=5.0)
    except httpx.HTTPError:
        return None
    return {200: True, 404: False}.get(reply.status_code)


def start_prefect_api() -> PrefectApi:
    """The API for this process, starting a temporary local one (without waiting for it) if none is set.

    Sets ``PREFECT_API_URL`` in this process's environment, so every Prefect client created later uses it;
    call it before Prefect is first imported.
    """
    global _current
    if _current is not None:
        return _current
    configured = _configured_url()
    if configured:
        _current = PrefectApi(configured, "configured")
        return _current
    if "prefect.settings" in sys.modules:
        # Prefect read its settings before we could set PREFECT_API_URL: it keeps starting its own server.
        _current = PrefectApi("", "prefect")
        return _current
    idle = idle_seconds()
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    state_path = home / local_state.LOCAL_API_STATE_FILE
    reused = local_state.reusable_local_api() if idle > 0 else None
    if reused is not None:
        _current = PrefectApi(reused, "reused")
    else:
        port = _free_port()
        log_path = home / "oms-audit-local-api.log"
        command = [sys.executable, "-m", "cli.local_api", "--port", str(port), "--idle-seconds", str(idle)]
        if idle == 0:
            command += ["--parent", str(os.getpid())]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the terminal's Ctrl-C is for the CLI, not for its API
                cwd=Path(__file__).resolve().parent.parent,
                env={**os.environ, "PREFECT_HOME": str(home)},
            )
        _current = PrefectApi(f"http://127.0.0.1:{port}/api", "started", process, log_path)
        if idle > 0:
            local_state.write_state(state_path, {"url": _current.url, "pid": process.pid})
        else:
            atexit.register(_current.stop)
    os.environ["PREFECT_API_URL"] = _current.url
    return _current


def ensure_prefect_api() -> str:
    """The API URL in use, once it answers."""
    return start_prefect_api().wait()

"""Make sure this process has one Prefect API before it does anything concurrent.

With no ``PREFECT_API_URL``, Prefect starts a temporary ("ephemeral") server on first use. Its start is not
guarded against threads: the CLI's watcher and the flow thread asking at once each started one, racing on
the same SQLite database. Starting it here, once, in the main thread, leaves every later client to reuse it.
"""

from __future__ import annotations

from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED


def ensure_prefect_api() -> str:
    """The API URL in use: the configured one, or the ephemeral server's (started now if needed)."""
    configured = PREFECT_API_URL.value()
    if configured or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return str(configured or "")
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url

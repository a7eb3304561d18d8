"""The temporary local Prefect API the CLI starts (see :mod:`cli.prefect_api`), run as its own process.

    python -m cli.local_api --port PORT --idle-seconds N [--parent PID]

Prefect's own ephemeral server app (no UI, ephemeral services) under uvicorn on 127.0.0.1, plus two ways to
end: after ``N`` seconds without a request (a paused run polls, so it keeps it alive), or, with
``--parent``, as soon as that process is gone (a CLI killed without a chance to stop it leaves nothing).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cli.local_state import process_alive

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _parent_alive(pid: int) -> bool:
    return process_alive(pid) and os.getppid() == pid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cli.local_api")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-seconds", type=float, default=600.0)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)

    # What Prefect's own ephemeral server sets: no UI, ephemeral services, one app per process.
    os.environ.update({"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"})
    os.environ.pop("PREFECT_API_URL", None)

    import uvicorn
    from prefect.server.api.server import create_app

    inner = create_app()
    last_request = [time.monotonic()]

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            last_request[0] = time.monotonic()
        await inner(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="error", lifespan="on"))

    def watch() -> None:
        while not server.should_exit:
            time.sleep(1)
            idle = time.monotonic() - last_request[0]
            if (args.parent is not None and not _parent_alive(args.parent)) or (
                args.idle_seconds > 0 and idle > args.idle_seconds
            ):
                server.should_exit = True

    threading.Thread(target=watch, name="oms-audit-api-watch", daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()

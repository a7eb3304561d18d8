"""Running the service: uvicorn on one host/port, settings from the environment (``oms-audit serve``)."""

from __future__ import annotations

import argparse
import logging
from typing import Literal

import uvicorn

from service.app import ServiceConfig, create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

#: uvicorn's choice: ``auto`` is uvloop when it is installed (a dependency wherever it builds, i.e. not on
#: Windows), else asyncio's loop
Loop = Literal["auto", "uvloop", "asyncio"]


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    log_level: str = "info",
    access_log: bool = False,
    loop: Loop = "auto",
    config: ServiceConfig | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; queued audit events are delivered before the process exits.

    HTTP parsing is httptools' (uvicorn's C parser; its pure-Python h11 cost a fifth of the CPU per write,
    bench/RESULTS.md) and the event loop uvloop's when it is installed (``loop``: ``auto``, ``uvloop`` or
    ``asyncio``); together they are uvicorn's "standard" set. The access log is off unless asked for: a line
    per request is CPU the audit trail already spends on every write.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        http="httptools",
        loop=loop,
        timeout_graceful_shutdown=10,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description="Run the oms-audit HTTP service.")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request (off by default)")
    parser.add_argument(
        "--loop", default="auto", choices=["auto", "uvloop", "asyncio"], help="event loop (auto: uvloop if installed)"
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, log_level=args.log_level, access_log=args.access_log, loop=args.loop)

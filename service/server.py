"""Running the service: uvicorn on one host/port, settings from the environment (``oms-audit serve``)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from service.app import ServiceConfig, create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, log_level: str = "info", config: ServiceConfig | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; queued audit events are delivered before the process exits."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description="Run the oms-audit HTTP service.")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    serve(args.host, args.port, log_level=args.log_level)

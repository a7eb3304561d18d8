"""What the CLI finds out about the local Prefect setup without importing Prefect (or anything heavy).

Shared by the temporary API (:mod:`cli.prefect_api`) and the warm runner (:mod:`cli.runner_client`,
:mod:`cli.runner`): where ``PREFECT_HOME`` is, the idle lifetimes, whether a process lives, the active
profile's settings, the small JSON state files kept in ``PREFECT_HOME``, and whether a temporary API a previous
command left running can be reused. Standard library only: the warm runner's client runs this before anything
else in every command, and its whole point is to cost nothing.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.errors import ConfigError

LOCAL_API_STATE_FILE = "oms-audit-local-api.json"


def prefect_home(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def profiles_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("PREFECT_PROFILES_PATH") or prefect_home(environ) / "profiles.toml").expanduser()


def idle_seconds(variable: str, default: float, zero_means: str, environ: Mapping[str, str] | None = None) -> float:
    """A lifetime in seconds from ``variable`` (``default`` when unset); ConfigError unless a number >= 0."""
    raw = (os.environ if environ is None else environ).get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"{variable}={raw!r}: expected a number of seconds >= 0 ({zero_means})", variable=variable)
    return value


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def profile_setting(name: str, environ: Mapping[str, str] | None = None) -> str:
    """A setting of the active Prefect profile in ``profiles.toml`` ("" when unset)."""
    environ = os.environ if environ is None else environ
    try:
        profiles = tomllib.loads(profiles_path(environ).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    active = environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    settings = profiles.get("profiles", {}).get(active, {})
    return str(settings.get(name, "") if isinstance(settings, dict) else "").strip()


def configured_api_url(environ: Mapping[str, str] | None = None) -> str:
    """``PREFECT_API_URL`` from the environment, else from the active profile ("" when neither sets it)."""
    environ = os.environ if environ is None else environ
    return environ.get("PREFECT_API_URL", "").strip() or profile_setting("PREFECT_API_URL", environ)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write a state file readable by its owner only, atomically (a reader never sees half of it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(dict(state), handle)
    os.replace(tmp, path)


def healthy(api_url: str, timeout: float = 1.0) -> bool:
    """Whether a Prefect API answers ``/health`` (plain http.client: no proxy, nothing to import)."""
    import http.client  # only when a temporary API is to be checked: it costs more than the rest here

    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", f"{parts.path.rstrip('/')}/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def reusable_local_api(environ: Mapping[str, str] | None = None) -> str | None:
    """The URL of the temporary API a previous command left running in ``PREFECT_HOME``, if it still answers."""
    state = read_state(prefect_home(environ) / LOCAL_API_STATE_FILE)
    try:
        url, pid = str(state["url"]), int(state["pid"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None
    return url if process_alive(pid) and healthy(url) else None

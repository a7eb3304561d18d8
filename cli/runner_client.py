"""The client side of the warm runner (:mod:`cli.runner`): hand this command to it, or say it cannot be.

Importing Prefect costs a command 2-2.5 s of CPU before anything of ours runs. A runner that has imported it
already forks a child per command that runs the ordinary CLI code; this module, which runs first in both
entry points and imports nothing heavy, connects to it and relays what a process has of its own: argv, the
environment, the working directory, its standard streams (as file descriptors), its signals and, at the end,
its exit status or the signal that killed it.

The handshake never loses or doubles a command: the runner reports the child's pid, the child waits for a
``go`` this side sends only once it has that pid, and anything else (no runner, refused, a stale socket, the
runner gone before the pid) means "run in this process, as without a runner".

Which runner: one per key, a hash of everything Prefect reads when it is imported (the interpreter, the
working directory, every ``PREFECT_*`` variable, the profiles file's mtime) and of the newest mtime of the
project's Python files (an edited checkout never runs old code). Used only when the API is known without
Prefect (``PREFECT_API_URL`` in the environment or the active profile, or a temporary API left running,
whose URL then goes into the command's environment as :func:`cli.prefect_api.start_prefect_api` would put
it). ``OMS_AUDIT_RUNNER_IDLE_SECONDS`` (default 600) is how long a runner waits for the next command; 0
means no runner at all.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cli import local_state
from core.errors import ConfigError

IDLE_VARIABLE = "OMS_AUDIT_RUNNER_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 600.0
ROOT = Path(__file__).resolve().parent.parent
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HANDSHAKE_SECONDS = 10.0
MAX_MESSAGE = 1 << 20
PACKAGES = ("cli", "core", "flows", "tasks", "blocks", "deployments", "sandbox", "service", "migrations")
"""The project's packages (the wheel's, in pyproject.toml): the code a runner has imported."""


def idle_seconds(environ: Mapping[str, str] | None = None) -> float:
    return local_state.idle_seconds(
        IDLE_VARIABLE, DEFAULT_IDLE_SECONDS, "0 runs every command without a runner", environ
    )


def runner_dir(environ: Mapping[str, str] | None = None) -> Path:
    return local_state.prefect_home(environ) / "oms-audit-runner"


def newest_source_mtime(root: Path = ROOT) -> int:
    """The newest mtime (ns) of the project's ``*.py`` files (not of folders: writing bytecode moves those).

    Only the project's packages are walked: installed without a checkout, ``root`` is site-packages, and
    every command would otherwise stat every file of every dependency."""
    newest = 0
    stack = [str(root / name) for name in PACKAGES if (root / name).is_dir()]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith(".") and entry.name != "__pycache__":
                        stack.append(entry.path)
                elif entry.name.endswith(".py"):
                    newest = max(newest, entry.stat().st_mtime_ns)
    return newest


def runner_key(environ: Mapping[str, str], cwd: str, root: Path = ROOT) -> str:
    try:
        profiles_mtime = local_state.profiles_path(environ).stat().st_mtime_ns
    except OSError:
        profiles_mtime = 0
    material = {
        "python": sys.executable,
        "root": str(root),
        "cwd": cwd,
        "prefect": sorted((k, v) for k, v in environ.items() if k.startswith("PREFECT_")),
        "profiles": profiles_mtime,
        "sources": newest_source_mtime(root),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]


def socket_path(environ: Mapping[str, str], key: str) -> Path:
    return runner_dir(environ) / f"{key}.sock"


def state_path(environ: Mapping[str, str], key: str) -> Path:
    return runner_dir(environ) / f"{key}.json"


def with_known_api(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment a runner and its commands use, or None when the API is not known without Prefect."""
    if local_state.configured_api_url(environ):
        return dict(environ)
    reused = local_state.reusable_local_api(environ)
    return {**environ, "PREFECT_API_URL": reused} if reused else None


def _runner_enabled(environ: Mapping[str, str]) -> bool:
    try:
        return idle_seconds(environ) > 0
    except ConfigError:
        return False  # the command runs in-process and reports the bad value itself


def _stdin_for_child() -> tuple[int, int | None]:
    """The fd the child reads as stdin, and the write end of a relay pipe when stdin is a terminal (a child
    outside the terminal's foreground process group could not read it)."""
    try:
        if not os.isatty(0):
            os.fstat(0)
            return 0, None
    except OSError:
        return os.open(os.devnull, os.O_RDONLY), None
    read_end, write_end = os.pipe()
    return read_end, write_end


def _relay_terminal(write_end: int) -> None:
    try:
        while chunk := os.read(0, 65536):
            os.write(write_end, chunk)
    except OSError:
        pass
    finally:
        os.close(write_end)


def _receive(conn: socket.socket) -> dict[str, Any] | None:
    data = conn.recv(MAX_MESSAGE)
    if not data:
        return None
    message = json.loads(data)
    return message if isinstance(message, dict) else None


def run_in_runner(entry: str, argv: list[str]) -> int | None:
    """Run the command in a warm runner: its exit status (negative: killed by that signal), or None when no
    runner took it (nothing of the command ran; run it in this process)."""
    environ = dict(os.environ)
    if not _runner_enabled(environ):
        return None
    known = with_known_api(environ)
    if known is None:
        return None
    try:
        cwd = os.getcwd()
        path = socket_path(known, runner_key(known, cwd))
        if not path.exists():
            return None
    except OSError:  # an unreadable folder of the project, a removed working directory: no runner
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.settimeout(HANDSHAKE_SECONDS)
    stdin_fd, relay = -1, None
    try:
        conn.connect(str(path))
        stdin_fd, relay = _stdin_for_child()
        request = {"entry": entry, "argv": argv, "env": known, "cwd": cwd, "argv0": sys.argv[0]}
        socket.send_fds(conn, [json.dumps(request).encode()], [stdin_fd, 1, 2])
        reply = _receive(conn)
        if reply is None or not isinstance(reply.get("pid"), int):
            raise OSError(f"runner refused: {reply}")
        pid = int(reply["pid"])
        conn.sendall(b'{"go": true}')
    except (OSError, ValueError):
        conn.close()
        if relay is not None:
            os.close(relay)
        if stdin_fd > 0:
            os.close(stdin_fd)
        return None
    # The command runs in the child from here on: this process only relays.
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda received, _frame: _forward(pid, received))
    if relay is not None:
        os.close(stdin_fd)
        threading.Thread(target=_relay_terminal, args=(relay,), name="oms-audit-tty-relay", daemon=True).start()
    conn.settimeout(None)
    try:
        while (message := _receive(conn)) is not None:
            if isinstance(message.get("status"), int):
                return int(message["status"])
    except (OSError, ValueError):
        pass
    print("error: the warm runner ended before it reported how the command ended", file=sys.stderr)
    return 1


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def exit_with(status: int) -> None:
    """End this process as the child ended: its exit code, or death by the same signal."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        sys.exit(128 - status)
    sys.exit(status)


def runner_alive(environ: Mapping[str, str], key: str) -> bool:
    state = local_state.read_state(state_path(environ, key)) or {}
    pid = state.get("pid")
    return isinstance(pid, int) and local_state.process_alive(pid)


def start_runner(environ: Mapping[str, str], cwd: str) -> None:
    """Start a runner for this environment in the background, unless one runs or none would be used."""
    if not _runner_enabled(environ):
        return
    known = with_known_api(environ)
    if known is None or runner_alive(known, runner_key(known, cwd)):
        return
    folder = runner_dir(known)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    log = os.open(folder / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    bootstrap = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from cli.runner import main; main()"
    try:
        subprocess.Popen(
            [sys.executable, "-c", bootstrap],
            cwd=cwd,
            env=known,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # no terminal signal of this command reaches it
        )
    except OSError:
        pass  # only the next command's speed is at stake
    finally:
        os.close(log)


def start_runner_at_exit() -> None:
    """After this in-process command, if it imported Prefect, leave a runner for the next one, with the
    environment this process started with (before the CLI changed it)."""
    environ, cwd = dict(os.environ), os.getcwd()

    def at_exit() -> None:
        if "prefect" in sys.modules:
            start_runner(environ, cwd)

    atexit.register(at_exit)


def run(entry: str, argv: list[str]) -> None:
    """Run the command in a warm runner and exit as it did; return (to run it in-process) if none took it."""
    status = run_in_runner(entry, argv)
    if status is not None:
        exit_with(status)
    start_runner_at_exit()

"""The warm runner: a process that has imported Prefect, the flows and the CLI once, and forks a child per command.

Started in the background after a command that imported Prefect (see :mod:`cli.runner_client`), with that
command's environment and working directory. It listens on a Unix socket in ``PREFECT_HOME`` (folder 0700,
socket 0600, peers of another uid refused), and for each command:

- receives argv, environment, working directory and the client's standard streams as file descriptors;
- forks (only with no other thread alive: a fork copies only the forking thread) and reports the child's pid;
- reaps the child and reports its exit status (negative: the signal that killed it).

The child closes what belongs to the runner, takes the client's streams as 0/1/2, its working directory and
environment, resets the signal handlers, waits for the client's ``go`` and runs the ordinary CLI code: every
run is still a Prefect flow run with its artifacts and reports. It ends through ``sys.exit``, so Prefect's exit
hooks drain its log and event workers. A daemon thread watches the connection: if the client dies (SIGKILL),
the child kills itself, as it would have died with an in-process command.

The runner ends after ``OMS_AUDIT_RUNNER_IDLE_SECONDS`` without a command, when its key no longer matches
(a Python file of the project changed), and on SIGTERM; the commands in flight finish first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from cli import local_state
from cli.runner_client import MAX_MESSAGE, idle_seconds, runner_dir, runner_key, socket_path, state_path

KEY_CHECK_SECONDS = 2.0


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} runner {os.getpid()}: {message}", flush=True)


def _warm_up() -> None:
    """Import what a command imports (seconds of CPU paid here once instead of in every command)."""
    import prefect.flow_engine
    import prefect.task_engine  # noqa: F401

    import cli.flow_runner
    import cli.main  # noqa: F401
    import flows.audit_fields_migration
    import flows.audit_fields_rollback  # noqa: F401
    import migrations.production_audit_fields_migration  # noqa: F401


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


@dataclass
class ChildJob:
    """What a forked child has to do: become the client's command (see :meth:`run`)."""

    conn: socket.socket
    request: dict[str, Any]
    fds: list[int]

    def run(self) -> None:
        """Run the command and exit with its code, through ``sys.exit`` (never returns)."""
        conn, request = self.conn, self.request
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            for target, fd in enumerate(self.fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            sys.argv = [str(request["argv0"]), *request["argv"]]
            conn.settimeout(None)
            go = conn.recv(MAX_MESSAGE)
        except (OSError, KeyError, TypeError) as exc:
            log(f"command {os.getpid()} could not start: {exc!r}")
            os._exit(70)
        if go != b'{"go": true}':
            os._exit(0)  # the client gave up before the command started: it runs the command itself

        def watch() -> None:
            try:
                while conn.recv(MAX_MESSAGE):
                    pass
            except OSError:
                pass
            os.kill(os.getpid(), signal.SIGKILL)  # the client is gone: so is its command

        threading.Thread(target=watch, name="oms-audit-client-watch", daemon=True).start()
        sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
        from cli.render import reset_consoles

        reset_consoles()
        from cli.main import app, main

        if request["entry"] == "guide":
            sys.exit(main(["migrate", *request["argv"]]))
        app(args=request["argv"], prog_name="oms-audit")
        sys.exit(0)


class Runner:
    def __init__(self, idle: float) -> None:
        self.pid = os.getpid()
        self.idle = idle
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        self.key = runner_key(self.environ, self.cwd)
        self.socket_path = socket_path(self.environ, self.key)
        self.state_path = state_path(self.environ, self.key)
        self.children: dict[int, socket.socket] = {}
        self.stopping = False
        self.terminated = False
        self.listener: socket.socket | None = None
        self.wake_r, self.wake_w = os.pipe()

    def _stop(self, reason: str) -> None:
        if not self.stopping:
            log(f"stopping: {reason}")
        self.stopping = True
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            self.socket_path.unlink(missing_ok=True)
            self.state_path.unlink(missing_ok=True)

    def serve(self) -> ChildJob | None:
        """Serve until stopped and every command ended (None), or, in a forked child, return its job."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.socket_path.unlink(missing_ok=True)  # a stale one (we hold the lock: no runner owns it)
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(old_umask)
        listener.listen(16)
        self.listener = listener
        local_state.write_state(self.state_path, {"pid": self.pid, "socket": str(self.socket_path), "ready": True})
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "terminated", True))  # acted on in the loop
        log(f"ready on {self.socket_path.name}")
        last_busy = last_key_check = time.monotonic()
        while self.listener is not None or self.children:
            readable = [self.wake_r] + ([self.listener] if self.listener is not None else [])
            ready, _, _ = select.select(readable, [], [], 1.0)
            if self.wake_r in ready:
                while True:
                    try:
                        if not os.read(self.wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            self._reap()
            if self.terminated and self.listener is not None:
                self._stop("SIGTERM")
            if self.listener is not None and self.listener in ready and (job := self._accept()) is not None:
                return job
            now = time.monotonic()
            if self.children:
                last_busy = now
            if self.listener is not None and now - last_busy > self.idle:
                self._stop(f"idle for {self.idle:g} s")
            if self.listener is not None and now - last_key_check > KEY_CHECK_SECONDS:
                last_key_check = now
                if runner_key(self.environ, self.cwd) != self.key:
                    self._stop("the project's sources changed")
        return None

    def _reap(self) -> None:
        while self.children:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            status = os.waitstatus_to_exitcode(wait_status)
            log(f"command {pid} ended with {status}")
            conn = self.children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"status": status}).encode())
                conn.close()

    def _accept(self) -> ChildJob | None:
        """Take one request: fork its child (returning its job in the child), or refuse it."""
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return None
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            if _peer_uid(conn) != os.getuid():
                log("refused a connection from another user")
                conn.close()
                return None
            data, fds, _flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, 3)
            request = json.loads(data)
            if len(fds) != 3 or not isinstance(request, dict):
                raise ValueError("a request without its three streams")
            if runner_key(self.environ, self.cwd) != self.key:
                conn.sendall(b'{"refused": "the project changed"}')
                self._stop("the project's sources changed")
                raise ValueError("refused: the project changed")
            if threading.active_count() != 1:
                conn.sendall(b'{"refused": "the runner has threads"}')
                self._stop(f"threads alive: {[t.name for t in threading.enumerate()]}")
                raise ValueError("refused: threads alive")
            pid = os.fork()
        except (OSError, ValueError) as exc:
            log(f"a request failed: {exc!r}")
            for fd in fds:
                os.close(fd)
            conn.close()
            return None
        if pid == 0:  # the child: nothing of the runner stays open in it
            if self.listener is not None:
                self.listener.close()
            for other in self.children.values():
                other.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            return ChildJob(conn, request, fds)
        for fd in fds:
            os.close(fd)
        self.children[pid] = conn
        log(f"command {pid} started")
        with contextlib.suppress(OSError):  # a client gone: the child sees it and ends without running anything
            conn.sendall(json.dumps({"pid": pid}).encode())
        return None


def main() -> None:
    """``python -c 'from cli.runner import main; main()'``, as :func:`cli.runner_client.start_runner` runs it."""
    idle = idle_seconds()
    if idle <= 0:
        return
    folder = runner_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    runner = Runner(idle)
    lock = os.open(folder / f"{runner.key}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # a runner for this key is starting or running
    local_state.write_state(runner.state_path, {"pid": runner.pid, "ready": False})  # no second one is started
    started = time.monotonic()
    _warm_up()
    log(f"imported in {time.monotonic() - started:.1f} s")
    if threading.active_count() != 1:
        log(f"not serving: threads alive after the imports: {[t.name for t in threading.enumerate()]}")
        runner.state_path.unlink(missing_ok=True)
        return
    try:
        job = runner.serve()
    finally:
        if os.getpid() == runner.pid:
            runner._stop("exiting")
            runner.state_path.unlink(missing_ok=True)
    if job is not None:
        job.run()

"""Which process holds something, and whether that process is still there.

A lease or a run record names its process (host, pid, and the process's start time, so a pid reused by a
later process does not pass for the original). On the same host the answer is certain: a holder whose
process is gone is dead. On another host nobody can tell; the caller must fall back on a TTL.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

from pydantic import BaseModel, ConfigDict


class ProcessId(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    pid: int
    #: the process's start time in clock ticks since boot (Linux), or "" where it cannot be read
    started: str = ""

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def is_gone(self) -> bool | None:
        """True: the process has ended (same host, certain). False: it runs. None: another host, unknown."""
        if self.host != this_host():
            return None
        if self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, owned by someone else
            pass
        return bool(self.started) and _start_time(self.pid) not in ("", self.started)


@lru_cache(maxsize=1)
def this_host() -> str:
    return socket.gethostname()


def this_process() -> ProcessId:
    pid = os.getpid()
    return ProcessId(host=this_host(), pid=pid, started=_start_time(pid))


def _start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (start time since boot); "" when not on Linux or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            stat = handle.read()
    except OSError:
        return ""
    # the command name (field 2) is parenthesised and may hold spaces: split after its closing bracket
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""

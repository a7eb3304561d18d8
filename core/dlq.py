"""The dead-letter queue's file protocol, both sides (DESIGN §6).

Files: ``<dir>/audit_dlq_<type>.jsonl`` (``fallback`` to be replayed, ``poison`` given up on, ``corrupt``
lines that did not parse, kept raw), one JSON line per event. Other applications write them too, so the
protocol is the contract:

- **Writers** open the file, take an exclusive ``flock``, check that the path still names the file they
  locked (a sweep or the rollback's archive may have renamed it away meanwhile; then they re-open, which
  starts a fresh file), end a torn last line left by a writer that died mid-write with a newline (the
  fragment becomes a line of its own, which the sweep keeps as corrupt), write whole lines, flush, and fsync
  when ``OMS_AUDIT_DLQ_FSYNC`` is set. A failed write is cut back, so no half line is left behind.
- **The sweep** claims a file by renaming it under the same lock (``…jsonl`` → ``…jsonl.claimed-<run>``),
  so whatever is appended afterwards goes to a fresh file and is not touched. While it works it holds
  ``.audit_dlq_run-<run>.lock``; a claimed file whose run no longer holds its lock was left by a crashed
  sweep and is adopted by the next one, resuming after the last checkpoint (``….offset``: the byte offset
  up to which every line is accounted for). The claimed file is deleted only when every line is.

Nothing here knows about sinks, Prefect or metrics: the sweep (``core/dlq_sweep.py``) composes it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

from pydantic import ValidationError

from core.audit import AuditEvent
from core.errors import DlqUnavailable, DlqWriteFailed
from core.timestamps import format_utc, utc_now

__all__ = [
    "DLQ_TYPES",
    "ClaimedFile",
    "Claimer",
    "DeadLetterQueue",
    "DlqStats",
    "LineBatch",
    "ParsedLine",
    "RawLine",
    "archive_dlq_files",
    "parse_line",
]

DLQ_TYPES: Final = ("fallback", "poison", "corrupt")
PREFIX: Final = "audit_dlq_"
CLAIM_MARK: Final = ".claimed-"
OFFSET_SUFFIX: Final = ".offset"
RUN_LOCK_PREFIX: Final = ".audit_dlq_run-"
#: every DLQ file, live or claimed (what the rollback archives)
DLQ_GLOB: Final = "audit_dlq_*.jsonl*"

_READ_BUFFER: Final = 1 << 20
#: bytes per read of ``read_line_batches``: a chunk and its lines fit a core's L2 cache
_READ_CHUNK: Final = 1 << 18


@dataclass(frozen=True)
class DlqStats:
    """How many lines a DLQ type holds and when its oldest one was enqueued (None when empty)."""

    count: int
    oldest_enqueued_at: datetime | None

    def oldest_age_seconds(self, now: datetime | None = None) -> float:
        if self.oldest_enqueued_at is None:
            return 0.0
        return max(0.0, ((now or datetime.now(UTC)) - self.oldest_enqueued_at).total_seconds())


class RawLine(NamedTuple):
    """One line as read: bytes without the newline, its start offset, and whether a newline ended it."""

    data: bytes
    offset: int
    end: int
    complete: bool


class LineBatch(NamedTuple):
    """Consecutive lines as read (bytes without their newlines), from byte ``offset`` up to ``end``.

    ``complete`` is False only for a last line that no newline ended (torn, or still being written); such a
    line always comes in a batch of its own.
    """

    lines: list[bytes]
    offset: int
    end: int
    complete: bool


class ParsedLine(NamedTuple):
    """A line that is an event (``event``), blank (both None) or unusable (``reason`` says why)."""

    event: AuditEvent | None
    reason: str | None


@dataclass
class ClaimedFile:
    """A file this sweep owns: where it is, what it was called, and where to resume."""

    path: Path
    source_name: str
    dlq_type: str
    start_offset: int = 0
    recovered: bool = False

    @property
    def offset_path(self) -> Path:
        return self.path.with_name(self.path.name + OFFSET_SUFFIX)

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


def parse_line(data: bytes, *, complete: bool = True) -> ParsedLine:
    """Classify one DLQ line: an event, a blank line, or a reason it cannot be replayed."""
    if not data.strip():
        return ParsedLine(None, None)
    try:
        return ParsedLine(AuditEvent.model_validate_json(data), None)
    except ValidationError as exc:
        reason = _why_not_an_event(data, exc)
    return ParsedLine(None, reason if complete else f"torn last line (its writer stopped mid-line); {reason}")


def _why_not_an_event(data: bytes, exc: ValidationError) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"invalid UTF-8 at byte {err.start}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return f"not JSON: {err.msg} at column {err.colno}"
    if not isinstance(value, dict):
        return f"JSON is not an event object (got {type(value).__name__})"
    problems = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "(line)"
        problems.append(f"{where}: {'missing' if error.get('type') == 'missing' else error.get('msg')}")
    return "not an audit event: " + "; ".join(problems)


def corrupt_record(line: RawLine, *, reason: str, source: str, run_id: str | None) -> bytes:
    """The corrupt-DLQ line keeping ``line`` raw (base64 when it is not UTF-8), why, and where it came from."""
    record: dict[str, Any] = {"reason": reason, "source": source, "offset": line.offset}
    try:
        record["raw"] = line.data.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(line.data).decode("ascii")
    record["dlq_type"] = "corrupt"
    record["enqueued_at"] = _now_text()
    if run_id:
        record["swept_by"] = run_id
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _now_text() -> str:
    return format_utc(utc_now())


_WRITE_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "the file size limit is reached (disk full for this process)",
}


class DeadLetterQueue:
    """The DLQ in ``directory``. Writers call :meth:`append`; the sweep uses :meth:`claimer`."""

    def __init__(self, directory: Path, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self._stats_cache: dict[Path, tuple[int, int, int, datetime | None]] = {}

    def __repr__(self) -> str:
        return f"DeadLetterQueue({str(self.directory)!r})"

    def path(self, dlq_type: str = "fallback") -> Path:
        _check_type(dlq_type)
        return self.directory / f"{PREFIX}{dlq_type}.jsonl"

    # ------------------------------------------------------------------------------------------------
    # writing

    def append(self, events: Sequence[AuditEvent], dlq_type: str = "fallback") -> None:
        """Append ``events`` as whole lines (stamped with ``dlq_type`` and, if unset, ``enqueued_at``)."""
        if not events:
            return
        now = datetime.now(UTC)
        lines = []
        for event in events:
            stamped = event.model_copy(update={"dlq_type": dlq_type, "enqueued_at": event.enqueued_at or now})
            lines.append(stamped.to_json_line().encode("utf-8"))
        self.append_raw(lines, dlq_type)

    def append_raw(self, lines: Iterable[bytes | str], dlq_type: str) -> None:
        """Append lines as they are (each must be one line; a newline is added)."""
        parts = []
        for line in lines:
            data = line.encode("utf-8") if isinstance(line, str) else line
            data = data.rstrip(b"\r\n")
            if b"\n" in data:
                raise ValueError("a DLQ line must not contain a newline")
            parts.append(data)
            parts.append(b"\n")
        if parts:
            self._append_bytes(self.path(dlq_type), b"".join(parts))

    def _append_bytes(self, path: Path, payload: bytes) -> None:
        for _ in range(1000):
            fd = self._open_for_append(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                mine = os.fstat(fd)
                try:
                    current = os.stat(path)
                except FileNotFoundError:
                    continue  # renamed away while we waited for the lock: open the fresh file
                if (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev):
                    continue
                self._write_locked(fd, path, mine.st_size, payload)
                return
            finally:
                os.close(fd)  # also releases the lock
        raise DlqWriteFailed(str(path), reason="the file kept being renamed away")  # pragma: no cover

    def _open_for_append(self, path: Path) -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise DlqWriteFailed(str(path), reason="the folder does not exist") from None
        except PermissionError:
            raise DlqWriteFailed(str(path), reason="permission denied") from None
        except OSError as exc:
            raise DlqWriteFailed(str(path), reason=os.strerror(exc.errno or 0) or str(exc)) from None

    def _write_locked(self, fd: int, path: Path, size: int, payload: bytes) -> None:
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            payload = b"\n" + payload  # end the torn line a dead writer left; the sweep keeps it as corrupt
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # no half line left behind
            reason = _WRITE_ERRORS.get(exc.errno or 0) or os.strerror(exc.errno or 0) or str(exc)
            raise DlqWriteFailed(str(path), reason=reason) from None

    # ------------------------------------------------------------------------------------------------
    # reading

    def check_readable(self) -> None:
        """Raise ``DlqUnavailable`` unless the folder exists and can be listed."""
        if not self.directory.exists():
            raise DlqUnavailable(str(self.directory), reason="it does not exist")
        if not self.directory.is_dir():
            raise DlqUnavailable(str(self.directory), reason="it is not a folder")
        if not os.access(self.directory, os.R_OK | os.X_OK):
            raise DlqUnavailable(str(self.directory), reason="permission denied")

    def check_writable(self) -> None:
        """Raise ``DlqUnavailable`` unless the sweep can rename and create files in the folder."""
        self.check_readable()
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise DlqUnavailable(str(self.directory), reason="not writable (the sweep renames and appends files)")

    def live_files(self, dlq_type: str) -> list[Path]:
        """Files writers append to: ``audit_dlq_<type>.jsonl`` and ``audit_dlq_<type>-*.jsonl``."""
        _check_type(dlq_type)
        if not self.directory.is_dir():
            return []
        named = [self.path(dlq_type), *self.directory.glob(f"{PREFIX}{dlq_type}-*.jsonl")]
        return sorted({p for p in named if p.is_file()})

    def claimed_files(self, dlq_type: str) -> list[Path]:
        _check_type(dlq_type)
        if not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.glob(f"{PREFIX}{dlq_type}*.jsonl{CLAIM_MARK}*")
            if not p.name.endswith((OFFSET_SUFFIX, OFFSET_SUFFIX + ".tmp")) and p.is_file()
        )

    def files(self, dlq_type: str) -> list[Path]:
        """Every file holding lines of ``dlq_type``: live ones and claimed ones not yet finished."""
        return self.live_files(dlq_type) + self.claimed_files(dlq_type)

    @staticmethod
    def read_lines(path: Path, start: int = 0) -> Iterator[RawLine]:
        """Stream a file's lines from byte ``start`` (constant memory, whatever the file's size)."""
        with path.open("rb", buffering=_READ_BUFFER) as handle:
            handle.seek(start)
            offset = start
            for raw in handle:
                end = offset + len(raw)
                complete = raw.endswith(b"\n")
                yield RawLine(raw[:-1] if complete else raw, offset, end, complete)
                offset = end

    @staticmethod
    def read_line_batches(path: Path, start: int = 0, size: int = 500) -> Iterator[LineBatch]:
        """Stream a file's lines from byte ``start`` in batches of ``size`` lines (fewer only at the end of the
        file; constant memory).

        Reads chunks and splits them in C: the sweep reads millions of lines, and a Python-level turn per
        line was a good part of its cost (bench/bench_dlq.py). Chunks are small enough that a chunk and its
        lines stay in the CPU's cache until they are parsed, and a line cut by a chunk's end is joined up
        alone (not the whole next chunk); a line longer than a chunk is joined up from its pieces.
        """
        with path.open("rb", buffering=0) as handle:
            handle.seek(start)
            offset = start
            ready: list[bytes] = []  # whole lines not yet handed out
            pieces: list[bytes] = []  # the start of a line that the last chunk cut
            while chunk := handle.read(_READ_CHUNK):
                lines = chunk.split(b"\n")
                last = lines.pop()  # after the last newline: the start of the next line (or empty)
                if not lines:
                    pieces.append(last)
                    continue
                if pieces:
                    pieces.append(lines[0])
                    lines[0] = b"".join(pieces)
                pieces = [last] if last else []
                if ready:
                    ready += lines
                    lines = ready
                whole = len(lines) - len(lines) % size
                for first in range(0, whole, size):
                    part = lines[first : first + size]
                    end = offset + sum(map(len, part)) + len(part)
                    yield LineBatch(part, offset, end, True)
                    offset = end
                ready = lines[whole:]
            if ready:
                end = offset + sum(map(len, ready)) + len(ready)
                yield LineBatch(ready, offset, end, True)
                offset = end
            if pieces:
                rest = b"".join(pieces)
                yield LineBatch([rest], offset, offset + len(rest), False)

    def iter_parsed(self, dlq_type: str) -> Iterator[tuple[Path, RawLine, ParsedLine]]:
        """Every line of ``dlq_type`` (live and claimed files), parsed; changes nothing."""
        for path in self.files(dlq_type):
            with contextlib.suppress(FileNotFoundError):
                for line in self.read_lines(path):
                    yield path, line, parse_line(line.data, complete=line.complete)

    def stats(self) -> dict[str, DlqStats]:
        """Line count and oldest ``enqueued_at`` per DLQ type (every type listed, zero when empty).

        Files are scanned incrementally: a file seen before (same inode, not shorter) is read only from
        where the last scan stopped, so a collector calling this on an interval stays cheap.
        """
        result: dict[str, DlqStats] = {}
        seen: set[Path] = set()
        for dlq_type in DLQ_TYPES:
            count, oldest = 0, None
            for path in self.files(dlq_type):
                seen.add(path)
                try:
                    file_count, file_oldest = self._scan(path)
                except FileNotFoundError:
                    continue
                count += file_count
                if file_oldest is not None and (oldest is None or file_oldest < oldest):
                    oldest = file_oldest
            result[dlq_type] = DlqStats(count, oldest)
        for stale in set(self._stats_cache) - seen:
            del self._stats_cache[stale]
        return result

    def _scan(self, path: Path) -> tuple[int, datetime | None]:
        info = path.stat()
        cached = self._stats_cache.get(path)
        start, count, oldest = 0, 0, None
        if cached is not None and cached[0] == info.st_ino and cached[1] <= info.st_size:
            _, start, count, oldest = cached
        scanned = start
        for line in self.read_lines(path, start):
            if not line.complete:
                break  # a line being written (or torn): counted once it is whole
            scanned = line.end
            if not line.data.strip():
                continue
            count += 1
            stamp = _enqueued_at(line.data)
            if stamp is not None and (oldest is None or stamp < oldest):
                oldest = stamp
        self._stats_cache[path] = (info.st_ino, scanned, count, oldest)
        return count, oldest

    # ------------------------------------------------------------------------------------------------
    # the sweep's side

    @contextlib.contextmanager
    def claimer(self, run_id: str | None = None) -> Iterator[Claimer]:
        """Hold this sweep's run lock while claiming and working on files (released on exit)."""
        claimer = Claimer(self, run_id or uuid.uuid4().hex)
        try:
            yield claimer
        finally:
            claimer.close()

    def archive(self, label: str) -> list[Path]:
        """Move every DLQ file into ``archive/<label>/`` (see :func:`archive_dlq_files`)."""
        return archive_dlq_files(self.directory, label)


def _enqueued_at(data: bytes) -> datetime | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    for key in ("enqueued_at", "occurred_at"):
        stamp = value.get(key)
        if isinstance(stamp, str):
            try:
                parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _check_type(dlq_type: str) -> None:
    if not dlq_type or not dlq_type.replace("_", "").isalnum():
        raise ValueError(f"invalid DLQ type {dlq_type!r}: use letters, digits and '_' (e.g. 'fallback')")


@dataclass
class Claimer:
    """One sweep's claims. Holds ``.audit_dlq_run-<run_id>.lock`` so others can tell it is alive."""

    dlq: DeadLetterQueue
    run_id: str
    _lock_fd: int | None = field(default=None, init=False)
    _claims: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.run_id.replace("-", "").isalnum():
            raise ValueError(f"invalid run id {self.run_id!r}: letters, digits and '-' only")
        self.dlq.check_writable()
        path = self._lock_path(self.run_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self._lock_path(self.run_id).unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def _lock_path(self, run_id: str) -> Path:
        return self.dlq.directory / f"{RUN_LOCK_PREFIX}{run_id}.lock"

    def _claimed_name(self, source: str) -> str:
        """``<source>.claimed-<run>.<n>``: unique even when one run adopts several files of one source."""
        self._claims += 1
        return f"{source}{CLAIM_MARK}{self.run_id}.{self._claims}"

    @staticmethod
    def _owner_of(claimed_name: str) -> tuple[str, str]:
        """(source name, run id) of a claimed file's name."""
        source, _, rest = claimed_name.partition(CLAIM_MARK)
        return source, rest.split(".", 1)[0]

    def recover(self, dlq_type: str = "fallback") -> list[ClaimedFile]:
        """Adopt claimed files whose sweep is gone (its run lock is free), resuming at their checkpoint."""
        adopted: list[ClaimedFile] = []
        for path in self.dlq.claimed_files(dlq_type):
            source, owner = self._owner_of(path.name)
            if owner == self.run_id or not self._owner_is_gone(owner):
                continue
            target = path.with_name(self._claimed_name(source))
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue  # another sweep adopted it first
            offset_file = path.with_name(path.name + OFFSET_SUFFIX)
            start = _read_offset(offset_file)
            claimed = ClaimedFile(target, source, dlq_type, start, recovered=True)
            if start:
                _write_offset(claimed.offset_path, start)
            with contextlib.suppress(FileNotFoundError):
                offset_file.unlink()
            adopted.append(claimed)
        self._remove_orphan_offsets()
        return adopted

    def _owner_is_gone(self, owner: str) -> bool:
        path = self._lock_path(owner)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
        return True

    def _remove_orphan_offsets(self) -> None:
        for offset_file in self.dlq.directory.glob(f"{PREFIX}*{CLAIM_MARK}*{OFFSET_SUFFIX}*"):
            base = offset_file.name.removesuffix(".tmp").removesuffix(OFFSET_SUFFIX)
            if self._owner_of(base)[1] == self.run_id:
                continue
            claimed = offset_file.with_name(base)
            if not claimed.exists():
                with contextlib.suppress(FileNotFoundError):
                    offset_file.unlink()

    def claim(self, dlq_type: str = "fallback") -> list[ClaimedFile]:
        """Rename each live ``dlq_type`` file under the writers' lock; a file another sweep renamed first
        is skipped (the rename decides who owns it)."""
        claimed: list[ClaimedFile] = []
        for path in self.dlq.live_files(dlq_type):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                mine = os.fstat(fd)
                try:
                    current = os.stat(path)
                except FileNotFoundError:
                    continue
                if (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev):
                    continue
                target = path.with_name(self._claimed_name(path.name))
                os.rename(path, target)
            finally:
                os.close(fd)
            claimed.append(ClaimedFile(target, path.name, dlq_type))
        return claimed

    def checkpoint(self, claimed: ClaimedFile, offset: int) -> None:
        """Every line before ``offset`` is accounted for (delivered, re-queued, poisoned or kept corrupt)."""
        _write_offset(claimed.offset_path, offset, fsync=self.dlq.fsync)

    def finish(self, claimed: ClaimedFile) -> None:
        """Delete a claimed file whose every line is accounted for."""
        claimed.path.unlink(missing_ok=True)
        claimed.offset_path.unlink(missing_ok=True)


def _read_offset(path: Path) -> int:
    try:
        return max(0, int(path.read_text().strip() or 0))
    except (FileNotFoundError, ValueError):
        return 0


def _write_offset(path: Path, offset: int, *, fsync: bool = False) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w") as handle:
        handle.write(str(offset))
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, path)


# ----------------------------------------------------------------------------------------------------
# rollback: archive, never delete (DESIGN §5, the guide's step 3)


def archive_dlq_files(dlq_dir: Path, label: str) -> list[Path]:
    """Move every DLQ file (live, claimed, checkpoints) into ``<dlq_dir>/archive/<label>/`` under the
    writers' lock, so no line being appended is lost; returns the archived paths (empty when none)."""
    if not dlq_dir.is_dir():
        return []
    archived: list[Path] = []
    destination = dlq_dir / "archive" / label
    for path in sorted(dlq_dir.glob(DLQ_GLOB)):
        if not path.is_file():
            continue
        destination.mkdir(parents=True, exist_ok=True)
        target = _free_name(destination / path.name)
        with path.open("ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                os.replace(path, target)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        archived.append(target)
    return archived


def _free_name(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``… when an earlier archive under the same label holds that name."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate

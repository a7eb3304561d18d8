"""Rollback archives DLQ files (never deletes them), and a writer appending meanwhile loses nothing."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

from core.dlq import archive_dlq_files


def test_archive_moves_every_dlq_file_and_keeps_content(tmp_path: Path) -> None:
    (tmp_path / "audit_dlq_fallback.jsonl").write_text('{"event_id": "a"}\n')
    (tmp_path / "audit_dlq_poison.jsonl").write_text('{"event_id": "b"}\n')
    (tmp_path / "audit_dlq_fallback.jsonl.claimed-run1").write_text('{"event_id": "c"}\n')
    (tmp_path / "unrelated.jsonl").write_text("x\n")

    archived = archive_dlq_files(tmp_path, "rollback_1")

    assert sorted(p.name for p in archived) == [
        "audit_dlq_fallback.jsonl",
        "audit_dlq_fallback.jsonl.claimed-run1",
        "audit_dlq_poison.jsonl",
    ]
    assert all(p.parent == tmp_path / "archive" / "rollback_1" for p in archived)
    assert (tmp_path / "archive" / "rollback_1" / "audit_dlq_poison.jsonl").read_text() == '{"event_id": "b"}\n'
    assert (tmp_path / "unrelated.jsonl").exists()
    assert not list(tmp_path.glob("audit_dlq_*"))


def test_archive_waits_for_a_writer_holding_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "audit_dlq_fallback.jsonl"
    path.write_text('{"event_id": "a"}\n')
    with path.open("ab") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        result: list[Path] = []
        mover = threading.Thread(target=lambda: result.extend(archive_dlq_files(tmp_path, "r")))
        mover.start()
        time.sleep(0.2)
        assert path.exists(), "the archive must wait for the writer's lock"
        writer.write(b'{"event_id": "b"}\n')
        writer.flush()
        fcntl.flock(writer.fileno(), fcntl.LOCK_UN)
    mover.join(5)
    assert result and result[0].read_text().splitlines() == ['{"event_id": "a"}', '{"event_id": "b"}']


def test_missing_dlq_dir_archives_nothing(tmp_path: Path) -> None:
    assert archive_dlq_files(tmp_path / "absent", "r") == []


def test_archiving_twice_under_one_label_keeps_both(tmp_path: Path) -> None:
    (tmp_path / "audit_dlq_fallback.jsonl").write_text("first\n")
    archive_dlq_files(tmp_path, "same")
    (tmp_path / "audit_dlq_fallback.jsonl").write_text("second\n")
    (second,) = archive_dlq_files(tmp_path, "same")
    assert second.name == "audit_dlq_fallback.jsonl.1" and second.read_text() == "second\n"
    assert (tmp_path / "archive" / "same" / "audit_dlq_fallback.jsonl").read_text() == "first\n"

"""Kept for callers of the earlier module: the archive now lives in :mod:`core.dlq` with the rest of the
DLQ file protocol."""

from core.dlq import DLQ_GLOB, archive_dlq_files

__all__ = ["DLQ_GLOB", "archive_dlq_files"]

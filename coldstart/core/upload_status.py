"""The states of a creator upload (`uploads.status`), in pipeline order.

    pending -> transcribed -> embedded -> indexed -> scored      (or -> failed, with the error)

`UploadStatus` is a `StrEnum`: a member compares equal to its stored string, and
`.value` is what the table holds.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["UploadStatus", "UNFINISHED"]


class UploadStatus(StrEnum):
    PENDING = "pending"
    TRANSCRIBED = "transcribed"
    EMBEDDED = "embedded"
    INDEXED = "indexed"
    SCORED = "scored"
    FAILED = "failed"


# What a scoring run picks up (failed uploads only when asked to retry them).
UNFINISHED = (
    UploadStatus.PENDING,
    UploadStatus.TRANSCRIBED,
    UploadStatus.EMBEDDED,
    UploadStatus.INDEXED,
)

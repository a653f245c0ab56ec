"""``download``: where the raw CSV comes from and the checksum that pins its bytes."""

from __future__ import annotations

from pydantic import Field

from housing.params.base import Section


class DownloadParams(Section):
    url: str = Field(pattern=r"^https?://\S+$", description="Public upstream copy of the CSV.")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file, lower-case hex."
    )
    timeout_s: float = Field(gt=0, le=3600, description="Per-request timeout, seconds.")

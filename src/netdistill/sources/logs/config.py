"""Scheme entry of a log-file source (``type: file``).

Sample::

    sources:
      - name: proxy
        type: file
        paths: ["/var/log/squid/access.log"]
        format: squid
      - name: web
        type: file
        paths: ["/var/log/nginx/*access.log"]
        format: combined
        format_options: {elapsed: seconds, time_marks: end}   # ... "$http_user_agent" $request_time
        start_at: end
        device: www1
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from netdistill.sources.config import SourceConfigBase
from netdistill.sources.lines import check_format


class FileSourceConfig(SourceConfigBase):
    type: Literal["file"]
    paths: list[str] = Field(
        min_length=1, description="files to follow; glob patterns (*, ?, [..]) allowed"
    )
    format: str = Field(description="line format: squid, clf, combined …")
    format_options: dict[str, Any] = Field(default_factory=dict)
    start_at: Literal["beginning", "end"] = Field(
        "beginning",
        description="where to start in a file met for the first time at the first start "
        "(files that appear later, and rotated ones, are always read from the beginning)",
    )
    poll_interval_s: PositiveFloat = Field(
        1.0, description="how often the paths are matched again for new and rotated files"
    )
    watch: Literal["auto", "poll"] = Field(
        "auto",
        description="auto: inotify opens every file that appears under a watched name at "
        "once, however short its life (polling where inotify cannot be had); poll: only "
        "the poll every poll_interval_s finds files (a file renamed away sooner is missed)",
    )
    read_chunk_bytes: PositiveInt = Field(
        4 * 1024 * 1024, description="at most this much is read from one file per poll"
    )
    device: str | None = Field(
        None, description="the exporter name on the records (default: this host's name)"
    )

    @model_validator(mode="after")
    def _check_format(self) -> FileSourceConfig:
        check_format(self.format, self.format_options)
        return self

"""The part of a source's scheme entry that every source type shares.

Each type's own model subclasses ``SourceConfigBase`` and adds ``type: Literal[...]``
and its settings; the scheme model builds the union of all of them keyed by ``type``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from netdistill.sources.quarantine import QuarantineLimits


class SourceConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    gatherer: str = Field("local", description="the gatherer that runs this source")
    quarantine: QuarantineLimits | None = Field(
        None,
        description="this source's quarantine limits: the keys given override manager.quarantine",
    )

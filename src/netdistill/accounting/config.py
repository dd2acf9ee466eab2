"""Settings of the accounting consumer (``netdistill accounting``).

Defaults live here. A sample, as command-line options::

    netdistill accounting --primary https://agg-a:8080 --secondary https://agg-b:8080 \\
        --out /var/lib/netdistill/accounting --token-file /etc/netdistill/manager.token
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt


class ManagerEndpoint(BaseModel):
    """One aggregator: its API URL and how to authenticate.

    ``token_file`` holds the bearer token, or is a manager's ``manager.json``; it is read
    again before every request, so a manager that restarts with a new token is followed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    token: str | None = None
    token_file: Path | None = None
    verify: bool | str = Field(True, description="TLS: False, or a CA bundle path")


class AccountingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: ManagerEndpoint
    secondary: ManagerEndpoint
    out_dir: Path
    poll_s: float = Field(1.0, gt=0, description="how often both managers are asked")
    failures: PositiveInt = Field(
        3, description="failed health checks in a row before the primary is in error"
    )
    stall_s: float = Field(
        10.0, ge=0, description="a window missing this long past end + grace is stalled"
    )
    timeout_s: float = Field(2.0, gt=0, description="of one request")
    start_after: int | None = Field(
        None, description="deliver windows starting after this (Unix s); default: all"
    )

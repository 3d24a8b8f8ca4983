"""The site file's ``dashboard:`` section: where the web page and ``/metrics`` listen."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["DashboardConfig"]


class DashboardConfig(BaseModel):
    """One listener for the page, its live feed and ``/metrics`` (basic auth, TLS optional).

    The variables API's credentials (``http_api``) log in as the operator, who may also
    change variables here; ``username``/``password`` give a viewer who reads everything and
    sets targets.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8081, ge=0, le=65535, description="TCP port; 0 picks a free one")
    username: str = Field("viewer", min_length=1, pattern=r"^[^:]+$", description="Basic auth")
    password: SecretStr | None = Field(
        None, min_length=1, description="viewer's password; None: only the operator logs in")
    tls_cert: Path | None = Field(None, description="Certificate chain (PEM); None: plain HTTP")
    tls_key: Path | None = Field(None, description="Private key (PEM) for tls_cert")
    refresh_s: float = Field(0.5, gt=0, le=2, description="how often the live feed looks")

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self

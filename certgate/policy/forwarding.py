"""The interface between `forward-request` and whatever sends the request to the backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.policy.errors import BackendError

if TYPE_CHECKING:
    from certgate.armnames import ArmNames
    from certgate.certs.material import CertificateMaterial
    from certgate.gateway.upstream.backend import Backend
    from certgate.gateway.upstream.tls import BackendTrust
    from certgate.policy.context import Context


@dataclass(frozen=True, slots=True)
class ForwardOptions:
    """The `forward-request` attributes, evaluated: timeout in seconds (None: the gateway's
    `--backend-timeout`, whose default is APIM's 300 s)."""

    timeout: float | None = None
    follow_redirects: bool = False
    buffer_request_body: bool = False
    buffer_response: bool = True
    fail_on_error_status_code: bool = False
    http_version: str = "1"


DEFAULT_OPTIONS = ForwardOptions()


class SnapshotView(Protocol):
    """What a request reads of the configuration it runs under (`context.snapshot`, the Snapshot
    compiler's `Snapshot`): backends and certificates by id, and what backends are trusted with."""

    @property
    def revision(self) -> int: ...  # grows with every configuration change
    @property
    def certificates_by_id(self) -> ArmNames[CertificateMaterial]: ...
    @property
    def certificates_by_thumbprint(self) -> Mapping[str, CertificateMaterial]: ...
    @property
    def backends(self) -> ArmNames[Backend]: ...
    @property
    def backend_trust(self) -> BackendTrust | None: ...  # None: the system roots only


class Forwarder(Protocol):
    limits: Limits  # the process's limits; policies read `max_buffered_body_bytes`

    async def forward(self, context: Context, options: ForwardOptions) -> None:
        """Send `context.Request` to `context.backend.url` + `context.backend_target()` (or to
        `context.backend.backend_id`'s URL) and set `context.Response` (status, headers, body).

        Raise `BackendError("BackendConnectionFailure" | "Timeout", message)` on failure.
        """
        ...


class _NoForwarder:
    """A context's forwarder until `Pipeline.run` sets the process's: it sends nothing."""

    limits = DEFAULT_LIMITS

    async def forward(self, context: Context, options: ForwardOptions) -> None:
        raise BackendError("BackendConnectionFailure", "No forwarder sends this request.")


NO_FORWARDER: Forwarder = _NoForwarder()

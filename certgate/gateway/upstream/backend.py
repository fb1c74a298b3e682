"""A backend entity compiled for the data plane: its URL, TLS switches and ready credentials.

`compile_backend(properties, certificates_by_id, certificates_by_thumbprint)` turns the stored
ARM properties of `/backends/{id}` (sealed values put back by `runtime_properties`) into a
`Backend` once per Snapshot, so requests only read attributes. Credentials: the client
certificate (the first of `credentials.certificateIds`, else of the thumbprints in
`credentials.certificate`), headers and the `Authorization` header (set, replacing any value the
request carries) and query parameters (set the same way). A `proxy` carries its traffic
(`certgate.gateway.upstream.proxy`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from certgate.armnames import stored_name
from certgate.gateway.upstream.proxy import Proxy
from certgate.policy.context import BackendTarget


class Backend:
    """The runtime form of one backend entity (immutable once compiled)."""

    __slots__ = (
        "certificate",
        "certificate_error",
        "header_lines",
        "header_names",
        "id",
        "proxy",
        "query",
        "switches",
        "target",
        "url",
        "validate_chain",
        "validate_name",
    )

    def __init__(
        self,
        id: str,
        url: str,
        *,
        certificate: Any = None,
        certificate_error: str | None = None,
        headers: Mapping[str, list[str]] | None = None,
        query: Mapping[str, list[str]] | None = None,
        validate_chain: bool = True,
        validate_name: bool = True,
        proxy: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.url = url
        self.target = BackendTarget(url, id)  # what `context.backend` becomes when routed here
        self.certificate = certificate  # CertificateMaterial presented to the backend, or None
        self.certificate_error = certificate_error  # set when a referenced certificate is missing
        headers = dict(headers or {})
        self.header_names = frozenset(name.lower() for name in headers)
        self.header_lines = "".join(
            f"{name}: {value}\r\n" for name, values in headers.items() for value in values
        )
        self.query = {name: list(values) for name, values in (query or {}).items()}
        self.validate_chain = validate_chain
        self.validate_name = validate_name
        self.switches = (validate_chain, validate_name)
        self.proxy = Proxy.from_properties(proxy) if proxy else None


def certificate_id(reference: str) -> str:
    """`cert1` from `cert1` or an ARM id `.../certificates/cert1`."""
    return reference.rstrip("/").rsplit("/", 1)[-1]


def runtime_properties(properties: Mapping[str, Any], secrets: Mapping[str, Any] | None) -> dict:
    """A stored backend's properties with its sealed values put back (credential values and
    `proxy.password`, as the management API's backends kind seals them)."""
    restored = copy.deepcopy(dict(properties))
    secrets = secrets or {}
    sealed = secrets.get("credentials")
    if sealed:
        restored.setdefault("credentials", {}).update(copy.deepcopy(sealed))
    if secrets.get("proxyPassword") is not None and "proxy" in restored:
        restored["proxy"]["password"] = secrets["proxyPassword"]
    return restored


def compile_backend(
    backend_id: str,
    properties: Mapping[str, Any],
    certificates_by_id: Mapping[str, Any],
    certificates_by_thumbprint: Mapping[str, Any],
) -> Backend:
    """The runtime `Backend` of ARM `properties`; a missing certificate fails its requests."""
    credentials = properties.get("credentials") or {}
    tls = properties.get("tls") or {}
    certificate, error = _client_certificate(
        credentials, certificates_by_id, certificates_by_thumbprint
    )
    headers = {name: list(values) for name, values in (credentials.get("header") or {}).items()}
    authorization = credentials.get("authorization")
    if authorization:
        headers["Authorization"] = [f"{authorization['scheme']} {authorization['parameter']}"]
    return Backend(
        backend_id,
        properties.get("url") or "",
        certificate=certificate,
        certificate_error=error,
        headers=headers,
        query=credentials.get("query") or {},
        validate_chain=tls.get("validateCertificateChain") is not False,
        validate_name=tls.get("validateCertificateName") is not False,
        proxy=properties.get("proxy"),
    )


def _client_certificate(
    credentials: Mapping[str, Any],
    by_id: Mapping[str, Any],
    by_thumbprint: Mapping[str, Any],
) -> tuple[Any, str | None]:
    ids = credentials.get("certificateIds") or []
    if ids:
        name = certificate_id(ids[0])
        material = by_id.get(stored_name(name, by_id) or name)  # ARM ids ignore case
        return (
            material,
            None if material is not None else f"Certificate with id '{name}' not found.",
        )
    thumbprints = credentials.get("certificate") or []
    if thumbprints:
        material = by_thumbprint.get(thumbprints[0].upper())
        if material is None:
            return None, f"Certificate with thumbprint '{thumbprints[0]}' not found."
        return material, None
    return None, None

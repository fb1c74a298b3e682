"""Certificates as the store keeps them: the sealed PEM of a `certificates/{id}` resource read back
into `CertificateMaterial`, and references to such resources turned into store paths.

The management API's certificates kind writes this form; the Snapshot compiler, the certificate
inventory and the kinds that reference certificates read it through here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from certgate.certs.material import CertificateMaterial, load_certificate

_ARM_CERTIFICATE = re.compile(r"(?:^|/)certificates/(?P<id>[^/]+)/?$", re.IGNORECASE)


class Sealed(Protocol):
    """A stored resource with its secrets unsealed (`certgate.config.store.Resource`)."""

    @property
    def secrets(self) -> Mapping[str, Any]: ...


def certificate_material(resource: Sealed) -> CertificateMaterial:
    """The material of a stored certificate resource (its sealed PEM)."""
    return load_certificate(resource.secrets["pem"].encode(), None)


def certificate_path(reference: str) -> str:
    """`c1`, `certificates/c1` or an ARM id `.../certificates/c1` -> `certificates/c1`."""
    reference = reference.strip()
    found = _ARM_CERTIFICATE.search(reference)
    return f"certificates/{found['id'] if found else reference}"

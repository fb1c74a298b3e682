"""`authentication-certificate`: the client certificate presented to the backend.

At run time it sets `context.backend_certificate` (a `CertificateMaterial`), which the
forwarder presents instead of any certificate of the backend entity. Lookups read
`context.snapshot`'s `certificates_by_id` and `certificates_by_thumbprint` (upper-case). A value
computed by an expression that finds nothing fails the request (500, `LastError.Source`
`authentication-certificate`): a request is never sent without the certificate its policy asked
for. PFX bytes from `body` (a byte array, or base64 text) are loaded once per distinct (bytes,
password), not per request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from certgate.certs.material import CertificateLoadError, CertificateMaterial, load_certificate
from certgate.policy.context import Context
from certgate.policy.elements.control import string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.values import Const, Value


@register("authentication-certificate")
@dataclass(slots=True)
class AuthenticationCertificate(Policy):
    """Exactly one of `certificate-id`, `thumbprint` or `body` (+ `password`)."""

    certificate_id: Value | None
    thumbprint: Value | None
    body: Value | None
    password: Value | None
    attributes = frozenset({"certificate-id", "thumbprint", "body", "password"})
    expressions = attributes
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        certificate_id = loader.attr(node, "certificate-id")
        thumbprint = loader.attr(node, "thumbprint")
        body = loader.attr(node, "body")
        password = loader.attr(node, "password")
        given = [v for v in (certificate_id, thumbprint, body) if v is not None]
        if len(given) != 1:
            raise node.error(
                "Exactly one of 'certificate-id', 'thumbprint' or 'body' must be specified."
            )
        if password is not None and body is None:
            raise node.error("Attribute 'password' is only allowed with 'body'.")
        if isinstance(certificate_id, Const):
            certificate_id = Const(
                loader.reference(
                    node,
                    f"certificates/{certificate_id.value}",
                    f"Certificate with id '{certificate_id.value}' could not be found.",
                )
            )
        if isinstance(thumbprint, Const):
            upper = thumbprint.value.strip().upper()
            found = loader.catalog.certificate_id_by_thumbprint(upper)
            if found is None:
                raise node.error(f"Certificate with thumbprint '{upper}' could not be found.")
            loader.add_reference(f"certificates/{found}")
            thumbprint = Const(upper)
        return cls(certificate_id, thumbprint, body, password)

    async def execute(self, context: Context) -> bool | int | None:
        context.backend_certificate = self.material(context)
        return None

    def material(self, context: Context) -> CertificateMaterial:
        """The certificate to present; a value that resolves to nothing fails the request."""
        snapshot = context.snapshot
        if self.body is not None:
            data = self.body.evaluate(context)
            password = None if self.password is None else string_of(self.password, context)
            return _material_from_body(data, password or None)
        if self.certificate_id is not None:
            key = string_of(self.certificate_id, context).strip()
            found = snapshot.certificates_by_id.named(key) if snapshot and key else None
            what = f"id '{key}'"
        else:
            assert self.thumbprint is not None  # parse requires one of the three
            key = string_of(self.thumbprint, context).strip().upper()
            found = snapshot.certificates_by_thumbprint.get(key) if snapshot and key else None
            what = f"thumbprint '{key}'"
        if not key:
            attribute = "certificate-id" if self.certificate_id is not None else "thumbprint"
            raise PolicyRuntimeError(None, f"Attribute '{attribute}' evaluated to an empty value.")
        if found is None:
            raise PolicyRuntimeError(None, f"Certificate with {what} could not be found.")
        if found.private_key is None:
            raise PolicyRuntimeError(None, f"Certificate with {what} has no private key.")
        return found


_BODY_CACHE: OrderedDict[tuple[bytes, str | None], CertificateMaterial] = OrderedDict()
_BODY_CACHE_SIZE = 64


def _material_from_body(data: object, password: str | None) -> CertificateMaterial:
    """PFX/PEM bytes (or their base64 text) from `body`, loaded once per distinct value."""
    if isinstance(data, str):
        try:
            data = base64.b64decode(data.strip(), validate=True)
        except binascii.Error:
            raise PolicyRuntimeError(
                None, "Attribute 'body' is neither a byte array nor base64 text."
            ) from None
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise PolicyRuntimeError(None, "Attribute 'body' evaluated to no certificate bytes.")
    data = bytes(data)
    key = (hashlib.sha256(data).digest(), password)
    material = _BODY_CACHE.get(key)
    if material is None:
        try:
            material = load_certificate(data, password)
        except CertificateLoadError as exc:
            raise PolicyRuntimeError(None, f"Attribute 'body': {exc.reason}") from None
        if material.private_key is None:
            raise PolicyRuntimeError(None, "Attribute 'body': the certificate has no private key.")
        _BODY_CACHE[key] = material
        if len(_BODY_CACHE) > _BODY_CACHE_SIZE:
            _BODY_CACHE.popitem(last=False)
    else:
        _BODY_CACHE.move_to_end(key)
    return material

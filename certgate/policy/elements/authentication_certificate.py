"""`authentication-certificate`: the client certificate presented to the backend.

Parsing and validation live here; the run-time lookup is shared with the upstream client, whose
owner may refine `execute`.
"""

from __future__ import annotations

from typing import Any

from certgate.policy.elements.control import string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.values import Const


@register("authentication-certificate")
class AuthenticationCertificate(Policy):
    """Exactly one of `certificate-id`, `thumbprint` or `body` (+ `password`)."""

    __slots__ = ("body", "certificate_id", "password", "thumbprint")
    attributes = frozenset({"certificate-id", "thumbprint", "body", "password"})
    expressions = attributes
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        self = cls()
        self.certificate_id = loader.attr(node, "certificate-id")
        self.thumbprint = loader.attr(node, "thumbprint")
        self.body = loader.attr(node, "body")
        self.password = loader.attr(node, "password")
        given = [v for v in (self.certificate_id, self.thumbprint, self.body) if v is not None]
        if len(given) != 1:
            raise node.error(
                "Exactly one of 'certificate-id', 'thumbprint' or 'body' must be specified."
            )
        if self.password is not None and self.body is None:
            raise node.error("Attribute 'password' is only allowed with 'body'.")
        if isinstance(self.certificate_id, Const):
            certificate_id = self.certificate_id.value
            loader.reference(
                node,
                f"certificates/{certificate_id}",
                f"Certificate with id '{certificate_id}' could not be found.",
            )
        if isinstance(self.thumbprint, Const):
            thumbprint = self.thumbprint.value.strip().upper()
            found = loader.catalog.certificate_id_by_thumbprint(thumbprint)
            if found is None:
                raise node.error(f"Certificate with thumbprint '{thumbprint}' could not be found.")
            loader.add_reference(f"certificates/{found}")
            self.thumbprint = Const(thumbprint)
        return self

    async def execute(self, context: Any) -> bool | None:
        context.backend_certificate = self._material(context)
        return None

    def _material(self, context: Any) -> Any:
        snapshot = context.snapshot
        if self.body is not None:
            from certgate.certs.material import load_certificate

            data = self.body.evaluate(context)
            if isinstance(data, str):
                import base64

                data = base64.b64decode(data)
            password = None if self.password is None else string_of(self.password, context)
            return load_certificate(bytes(data), password)
        if self.certificate_id is not None:
            key = string_of(self.certificate_id, context)
            found = getattr(snapshot, "certificates_by_id", {}).get(key)
            what = f"id '{key}'"
        else:
            key = string_of(self.thumbprint, context).upper()
            found = getattr(snapshot, "certificates_by_thumbprint", {}).get(key)
            what = f"thumbprint '{key}'"
        if found is None:
            raise PolicyRuntimeError(None, f"Certificate with {what} could not be found.")
        return found

"""`redirect-content-urls`: links to the backend in a body rewritten to go through the gateway.

Outbound, every occurrence of the backend's base URL (set-backend-service's when it changed it,
else the API's service URL) in the response body becomes the API's URL on the gateway, as the
client called it (`https://host[:port]/{api path}`); inbound, the request body's gateway URLs
become the backend's. Ordinal and case-sensitive, as APIM's; headers such as `Location` are not
changed (APIM documents set-header for them). A backend entity's URL is not known here: with
`set-backend-service backend-id` the body is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from certgate.policy.context import Context
from certgate.policy.elements.transforms import body_text, replace_body
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register


def _gateway_base(context: Context) -> str:
    url = context.Request.OriginalUrl
    default = 443 if url.Scheme == "https" else 80
    port = "" if url.Port == default else f":{url.Port}"
    path = context.Api.Path.strip("/") if context.Api is not None else ""
    return f"{url.Scheme}://{url.Host}{port}" + (f"/{path}" if path else "")


def _backend_base(context: Context) -> str | None:
    backend = context.backend
    if backend is not None and backend.backend_id is None and backend.url:
        return backend.url.rstrip("/")
    return None


@register("redirect-content-urls")
@dataclass(slots=True)
class RedirectContentUrls(Policy):
    """Swap the backend's base URL and the gateway's in the body."""

    response: bool

    sections = frozenset({"inbound", "outbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls(loader.target == "response")

    async def execute(self, context: Context) -> bool | int | None:
        backend = _backend_base(context)
        if backend is None:
            return None
        gateway = _gateway_base(context)
        find, replacement = (backend, gateway) if self.response else (gateway, backend)
        text = await body_text(context, self.response)
        if text is not None and find in text:
            replace_body(context, self.response, text.replace(find, replacement))
        return None

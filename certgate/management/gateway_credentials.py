"""`POST /apis/{apiId}/gatewayCredentials`: the portal's "Gateway credentials -> Client cert".

Body `{"properties": {"certificateId": "c1"}}` (an id or an ARM id) writes
`<authentication-certificate certificate-id="c1"/>` at the end of the API policy's `<inbound>`,
replacing any `authentication-certificate` already there; `{"certificateId": null}` removes it.
The API policy is created (with `<base/>` in every section) when the API has none. The policy goes
through the policy kind's own validation, so it is stored exactly as a PUT of it would be, its
references indexed (the certificate cannot be deleted while used). The answer is the API contract;
read the policy back at `/apis/{apiId}/policies/policy`. Effective with the next Snapshot.
"""

from __future__ import annotations

from lxml import etree

from certgate.certs.stored import certificate_path
from certgate.config.store import PreconditionFailed
from certgate.management.apis import APIS
from certgate.management.errors import ApiError, ValidationError
from certgate.management.kinds import Validated, WriteRequest
from certgate.management.policies import API_POLICY, policy_validator
from certgate.policy.errors import PolicyValidationError
from certgate.policy.formats import to_xml

_EMPTY = (
    "<policies>\n  <inbound>\n    <base />\n  </inbound>\n  <backend>\n    <base />\n  </backend>\n"
    "  <outbound>\n    <base />\n  </outbound>\n  <on-error>\n    <base />\n  </on-error>\n"
    "</policies>"
)
ELEMENT = "authentication-certificate"
# Stored documents never carry a DOCTYPE (saving refuses one); this parser makes sure an older row
# cannot make lxml expand entities or read files either.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
# the API_POLICY kind's own validator, typed as the synchronous one it is
_validate_api_policy = policy_validator("api")


def with_gateway_certificate(document: str, certificate_id: str | None) -> str:
    """`document` (raw or xml form) with its inbound gateway credential set to `certificate_id`."""
    try:
        root = etree.fromstring(to_xml(document).encode(), _PARSER)
    except (etree.XMLSyntaxError, PolicyValidationError) as error:
        raise ValidationError(
            f"The API policy cannot be updated: it is not well-formed XML ({error}).", "value"
        ) from None
    if root.getroottree().docinfo.doctype:
        raise ValidationError(
            "The API policy cannot be updated: it contains a DOCTYPE declaration.", "value"
        )
    inbound = root.find("inbound")
    if inbound is None:
        inbound = etree.Element("inbound")
        root.insert(0, inbound)
    for old in inbound.findall(ELEMENT):
        previous = old.getprevious()
        if previous is not None:
            previous.tail = old.tail
        else:
            inbound.text = old.tail
        inbound.remove(old)
    if certificate_id is not None:
        children = list(inbound)
        element = etree.SubElement(inbound, ELEMENT, {"certificate-id": certificate_id})
        if children:
            element.tail = children[-1].tail
            children[-1].tail = inbound.text
        else:
            inbound.text, element.tail = "\n    ", "\n  "
    return etree.tostring(root, encoding="unicode")


def set_gateway_credentials(request: WriteRequest) -> Validated:
    api_path = request.path
    if "certificateId" not in request.properties:
        raise ValidationError(
            "'certificateId' is required: a certificate id, or null to remove it.",
            "certificateId",
        )
    reference = request.properties["certificateId"]
    certificate_id = None
    if reference is not None:
        if not isinstance(reference, str) or not reference.strip():
            raise ValidationError(
                "'certificateId' must be a certificate id or null.", "certificateId"
            )
        path = certificate_path(reference)
        stored = request.store.canonical(path)
        if stored is None:
            raise ValidationError(
                f"Certificate with id '{path.split('/', 1)[1]}' not found.", "certificateId"
            )
        certificate_id = stored.split("/", 1)[1]
    policy_path = f"{api_path}/policies/policy"
    current = request.store.get(policy_path)
    document = current.properties["value"] if current is not None else _EMPTY
    updated = with_gateway_certificate(document, certificate_id)
    write = WriteRequest(
        API_POLICY,
        policy_path,
        {**request.ids, "policyId": "policy"},
        "PUT",
        {},
        {"format": "xml", "value": updated},
        current,
        request.store,
        {},
        request.key_vault,
    )
    result = _validate_api_policy(write)
    try:
        request.store.put(
            API_POLICY.name,
            policy_path,
            result.properties,
            references=[*result.references, api_path],
            if_match=current.etag if current is not None else None,
        )
    except PreconditionFailed:
        raise ApiError(
            412, "PreconditionFailed", "The API policy changed meanwhile; retry the request."
        ) from None
    api = request.current
    assert api is not None  # actions run on a stored resource: app.py answers 404 before
    return Validated(
        dict(api.properties),
        secrets=api.secrets or None,
        references=request.store.references(api_path),
    )


APIS.actions["gatewayCredentials"] = set_gateway_credentials

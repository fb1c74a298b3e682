"""Saving xsl-transform, jsonp, cross-domain and redirect-content-urls: what is refused, and why."""

from __future__ import annotations

import pytest

from certgate.policy.catalog import PlaceholderCatalog
from certgate.policy.errors import PolicyValidationError
from certgate.policy.loader import parse_document

XSL = "xmlns:xsl='http://www.w3.org/1999/XSL/Transform'"


def _save(inbound: str = "", outbound: str = "") -> None:
    text = f"<policies><inbound>{inbound}</inbound><outbound>{outbound}</outbound></policies>"
    parse_document(text, "api", PlaceholderCatalog())


@pytest.mark.parametrize(
    ("inbound", "reason"),
    [
        (
            f"<xsl-transform><xsl:stylesheet version='1.0' {XSL}><xsl:include href='"
            "http://example.com/a.xsl'/></xsl:stylesheet></xsl-transform>",
            "The stylesheet is not valid XSLT 1.0: Cannot resolve URI http://example.com/a.xsl",
        ),
        ("<xsl-transform><parameter name='a'>1</parameter></xsl-transform>", "exactly one"),
        (
            f"<xsl-transform><parameter>1</parameter><xsl:stylesheet version='1.0' {XSL}/>"
            "</xsl-transform>",
            "Required attribute 'name' is missing.",
        ),
        ("<cross-domain/>", "Element 'cross-domain' needs exactly one 'cross-domain-policy'."),
        (
            "<cross-domain><cross-domain-policy><allow-access-from domain='*' port='1'/>"
            "</cross-domain-policy></cross-domain>",
            "Attribute 'port' is not allowed in 'allow-access-from'.",
        ),
        (
            "<cross-domain><cross-domain-policy><script/></cross-domain-policy></cross-domain>",
            "Element 'script' is not allowed inside 'cross-domain-policy'.",
        ),
        ("<jsonp callback-parameter-name='cb'/>", "not allowed in the 'inbound' section"),
        ("<set-backend/>", "APIM has no policy of that name; set-backend-service changes"),
    ],
)
def test_invalid_elements_are_refused_when_saved(inbound: str, reason: str) -> None:
    with pytest.raises(PolicyValidationError) as caught:
        _save(inbound)
    assert reason in caught.value.reason


def test_valid_elements_save() -> None:
    _save(
        "<cross-domain><cross-domain-policy><site-control permitted-cross-domain-policies='all'/>"
        "</cross-domain-policy></cross-domain><redirect-content-urls/>"
        f"<xsl-transform><parameter name='p'>@(context.Request.Method)</parameter>"
        f"<xsl:stylesheet version='1.0' {XSL}><xsl:param name='p'/></xsl:stylesheet>"
        "</xsl-transform>",
        "<jsonp callback-parameter-name='@(&quot;cb&quot;)'/><redirect-content-urls/>",
    )

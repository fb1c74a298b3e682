"""Saving a policy: documents read as APIM reads them, refused with APIM's messages."""

from __future__ import annotations

import pytest

from certgate.policy.catalog import MemoryCatalog
from certgate.policy.errors import PolicyValidationError
from certgate.policy.loader import parse_document, parse_fragment
from certgate.policy.reader import read_document
from tests.policy.support import backend_url, make_context, policies, run


def test_raw_quotes_angle_brackets_and_ampersands_inside_expressions_are_read() -> None:
    text = """<policies><inbound>
      <set-variable name="v" value="@(context.Request.Method == "GET" && 1 < 2 ? "yes" : "no")" />
      <set-header name="X" exists-action="override">
        <value>@{ var s = "<b>"; return s; }</value></set-header>
    </inbound></policies>"""
    root = read_document(text)
    variable = root.children[0].children[0]
    assert variable.attrib["value"] == '@(context.Request.Method == "GET" && 1 < 2 ? "yes" : "no")'
    assert "value" in variable.expr_attrs
    value = root.children[0].children[1].children[0]
    assert value.text == '@{ var s = "<b>"; return s; }' and value.text_is_expr


def test_entity_escaped_expressions_are_decoded() -> None:
    root = read_document(
        '<policies><inbound><set-variable name="v" '
        'value="@(&quot;a&quot; + &quot;&amp;&quot;)"/></inbound></policies>'
    )
    assert root.children[0].children[0].attrib["value"] == '@("a" + "&")'


async def test_named_values_are_substituted_before_parsing_and_referenced() -> None:
    catalog = MemoryCatalog(
        named_values={"greeting": ("nv1", "hello"), "expr": ("nv2", '@("x" + "y")')}
    )
    text = policies(
        '<set-header name="A" exists-action="override"><value>{{greeting}}</value></set-header>'
        '<set-header name="B" exists-action="override"><value>{{expr}}</value></set-header>'
    )
    doc = parse_document(text, "api", catalog)
    assert doc.references == {"namedValues/nv1", "namedValues/nv2"}
    _, _, forwarder = await run(
        text.replace("{{greeting}}", "hello").replace("{{expr}}", '@("x" + "y")')
    )
    assert forwarder.calls[0].headers[-2:] == [("A", "hello"), ("B", "xy")]


def test_missing_named_value_is_refused_by_name() -> None:
    with pytest.raises(PolicyValidationError, match="Named value 'nope' could not be found"):
        parse_document(
            policies("<set-variable name='a' value='{{nope}}'/>"), "api", MemoryCatalog()
        )


def test_missing_backend_gives_apims_message_with_line_and_column() -> None:
    text = """<policies>
    <inbound>
        <base />
    <set-backend-service backend-id="X" />
    </inbound>
</policies>"""
    with pytest.raises(PolicyValidationError) as info:
        parse_document(text, "api", MemoryCatalog())
    assert str(info.value) == (
        "Error in element 'set-backend-service' on line 4, column 4: "
        "Backend with id 'X' could not be found."
    )


def test_not_well_formed_xml_is_refused_with_its_position() -> None:
    with pytest.raises(PolicyValidationError, match=r"not well-formed.*Line 1"):
        parse_document("<policies><inbound></policies>", "api", MemoryCatalog())


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        (
            "<log-to-eventhub logger-id='x'>text</log-to-eventhub>",
            "Policy 'log-to-eventhub' is not supported",
        ),
        ("<no-such-policy/>", "Unknown policy element 'no-such-policy'"),
        (
            "<set-variable name='@(&quot;n&quot;)' value='1'/>",
            "Expressions are not allowed in attribute 'name'",
        ),
        ("<set-header name='X' exists-action='sometimes'/>", "exists-action"),
        ("<set-header nam='X'/>", "Attribute 'nam' is not allowed in 'set-header'"),
        ("<set-body template='liquid'>{% if x %}</set-body>", "Liquid template:"),
        ("<choose><otherwise/></choose>", "needs at least one 'when'"),
        ("<choose><when condition='@(true)'><base/></when></choose>", "only allowed directly"),
        ("<set-status code='abc' reason='x'/>", "not a valid HTTP status code"),
        ("<set-variable name='v' value='@(context.Nope.Field)'/>", "attribute 'value'"),
    ],
)
def test_invalid_documents_are_refused_naming_the_construct(inner: str, message: str) -> None:
    with pytest.raises(PolicyValidationError, match=message) as info:
        parse_document(policies(inner), "api", MemoryCatalog())
    assert str(info.value).startswith("Error in element '")


def test_forward_request_outside_backend_is_refused() -> None:
    with pytest.raises(PolicyValidationError, match="not allowed in the 'inbound' section"):
        parse_document(policies("<forward-request/>"), "api", MemoryCatalog())


def test_references_are_collected_and_checked() -> None:
    catalog = MemoryCatalog(
        paths={"backends/b1", "certificates/c1"},
        fragments={
            "frag": "<fragment><set-header name='F' exists-action='override'>"
            "<value>1</value></set-header></fragment>"
        },
        thumbprints={"AB12": "c2"},
    )
    doc = parse_document(
        policies(
            "<set-backend-service backend-id='b1'/>"
            "<authentication-certificate certificate-id='c1'/>"
            "<authentication-certificate thumbprint='ab12'/>"
            "<include-fragment fragment-id='frag'/>"
        ),
        "api",
        catalog,
    )
    assert doc.references == {
        "backends/b1",
        "certificates/c1",
        "certificates/c2",
        "policyFragments/frag",
    }
    with pytest.raises(
        PolicyValidationError, match="Certificate with id 'gone' could not be found"
    ):
        parse_document(
            policies("<authentication-certificate certificate-id='gone'/>"), "api", catalog
        )
    with pytest.raises(PolicyValidationError, match="Policy fragment with id 'none'"):
        parse_document(policies("<include-fragment fragment-id='none'/>"), "api", catalog)


@pytest.mark.parametrize(
    "attrs",
    ["", "certificate-id='c1' thumbprint='AB12'", "thumbprint='AB12' password='p'"],
)
def test_authentication_certificate_needs_exactly_one_source(attrs: str) -> None:
    catalog = MemoryCatalog(paths={"certificates/c1"}, thumbprints={"AB12": "c2"})
    with pytest.raises(PolicyValidationError, match="authentication-certificate"):
        parse_document(policies(f"<authentication-certificate {attrs}/>"), "api", catalog)


def test_authentication_certificate_accepts_body_expression_with_password() -> None:
    doc = parse_document(
        policies(
            "<authentication-certificate password='pw' "
            "body='@((byte[])context.Variables[&quot;pfx&quot;])'/>"
        ),
        "api",
        MemoryCatalog(),
    )
    assert doc.references == set()


def test_fragment_including_itself_is_refused() -> None:
    catalog = MemoryCatalog(
        fragments={"loop": "<fragment><include-fragment fragment-id='loop'/></fragment>"}
    )
    with pytest.raises(PolicyValidationError, match="includes itself"):
        parse_fragment(catalog.fragments["loop"], catalog)


def test_context_is_cheap_to_build_and_parses_lazily() -> None:
    context = make_context(
        target="/api/a%20b?x=1&y=2&x=3", headers=[("Accept", "a"), ("accept", "b")]
    )
    request = context.Request
    assert request.Headers.GetValueOrDefault("ACCEPT") == "a,b"
    assert request.Headers["accept"] == ["a", "b"]
    assert request.Url.Path == "/api/a b"
    assert request.Url.QueryString == "?x=1&y=2&x=3"
    assert request.Url.Query.GetValueOrDefault("x") == "1,3"
    assert backend_url(context) == "https://backend.example/base/a%20b?x=1&y=2&x=3"


@pytest.mark.parametrize(
    "inner",
    [
        "<set-backend-service base-url='{{key}}'/>",
        "<set-variable name='v' value='@(&quot;{{key}}&quot; + )'/>",
    ],
)
def test_refusals_never_echo_a_named_value(inner: str) -> None:
    catalog = MemoryCatalog(named_values={"key": ("k1", "sup3r-secret value")})
    with pytest.raises(PolicyValidationError) as info:
        parse_document(policies(inner), "api", catalog)
    assert "sup3r" not in str(info.value) and "secret value" not in str(info.value)
    assert str(info.value).startswith("Error in element 's")

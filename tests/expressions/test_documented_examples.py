# ruff: noqa: E501 (documented expressions are quoted verbatim, one per line)
"""Golden results for Microsoft's documented policy expressions.

Sources, quoted verbatim:
- learn.microsoft.com/azure/api-management/api-management-policy-expressions, "Examples";
- the "Common policy expressions" cheat-sheet of Azure/api-management-policy-snippets
  (`policy-expressions/README.md`, also in the shared corpus: the test checks every expression
  there is in the table).

Each runs against a real `context` whose values make the documented meaning observable: a
header "header-name" holding "expected-header-value", a URI and a query parameter
"parameter-name" = "expected-value", a JSON body {"root": {"child": ...}}, a bearer JWT with a
"claim-name" claim, a real client certificate issued by the test root. Placeholders the
cheat-sheet leaves for the reader (`"trusted-issuer"`, the thumbprint...) are filled in with
this context's values, as a reader would.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from certgate.expressions import compile_expression
from certgate.policy.context import Context, Headers, Response
from tests.expressions.contexts import CLIENT, build_context, certificate
from tests.expressions.test_corpus_compile import CORPUS


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


JWT = f"{_segment({'alg': 'RS256'})}.{_segment({'claim-name': ['first', 'second']})}.c2ln"

LEARN_EXAMPLES: list[tuple[str, object]] = [
    ("@(true)", True),
    ("@((1+1).ToString())", "2"),
    ('@("Hi There".Length)', 8),
    (
        '@(Regex.Match(context.Response.Headers.GetValueOrDefault("Cache-Control",""), '
        '@"max-age=(?<maxAge>\\d+)").Groups["maxAge"]?.Value)',
        "300",
    ),
    (
        '@(context.Variables.ContainsKey("maxAge") ? '
        'int.Parse((string)context.Variables["maxAge"]) : 3600)',
        3600,
    ),
    (
        """@{
  string[] value;
  if (context.Request.Headers.TryGetValue("Authorization", out value))
  {
      if(value != null && value.Length > 0)
      {
          return Encoding.UTF8.GetString(Convert.FromBase64String(value[0]));
      }
  }
  return null;

}""",
        "user:password",
    ),
]

# (cheat-sheet expression verbatim, placeholder fill-ins, expected)
CHEAT_SHEET: list[tuple[str, dict[str, str], object]] = [
    (
        'context.Request.Headers.GetValueOrDefault("header-name","optional-default-value")',
        {},
        "expected-header-value",
    ),
    ('context.Request.Headers.ContainsKey("header-name") == true', {}, True),
    (
        'context.Request.Headers.GetValueOrDefault("header-name", "").Equals("expected-header-value", StringComparison.OrdinalIgnoreCase)',
        {},
        True,
    ),
    (
        'context.Request.MatchedParameters.GetValueOrDefault("parameter-name","optional-default-value")',
        {},
        "expected-value",
    ),
    ('context.Request.MatchedParameters.ContainsKey("parameter-name") == true', {}, True),
    (
        'context.Request.MatchedParameters.GetValueOrDefault("parameter-name", "").Equals("expected-value", StringComparison.OrdinalIgnoreCase) == true',
        {},
        True,
    ),
    (
        'context.Request.Url.Query.GetValueOrDefault("parameter-name", "optional-default-value")',
        {},
        "expected-value",
    ),
    ('context.Request.Url.Query.ContainsKey("parameter-name") == true', {}, True),
    (
        'context.Request.Url.Query.GetValueOrDefault("parameter-name", "").Equals("expected-value", StringComparison.OrdinalIgnoreCase) == true',
        {},
        True,
    ),
    (
        'context.Variables.GetValueOrDefault<string>("variable-name","optional-default-value")',
        {},
        "expected-value",
    ),
    ('context.Variables.ContainsKey("variable-name") == true', {}, True),
    (
        'context.Variables.GetValueOrDefault<string>("variable-name","").Equals("expected-value", StringComparison.OrdinalIgnoreCase)',
        {},
        True,
    ),
    (
        '(string)context.Request.Body.As<JObject>(preserveContent: true).SelectToken("root.child jsonpath")',
        {"root.child jsonpath": "root.child"},
        "from the body",
    ),
    (
        '(string)((IResponse)context.Variables["response-variable-name"]).Body.As<JObject>().SelectToken("root.child jsonpath")',
        {"root.child jsonpath": "root.child"},
        "from the response",
    ),
    (
        "JObject body = context.Request.Body.As<JObject>(); \n"
        'body.Add(new JProperty("property-name", "property-value"));\n'
        "return body.ToString(); ",
        {},
        '{\n  "root": {\n    "child": "from the body"\n  },\n  "property-name": "property-value"\n}',
    ),
    (
        'context.Request.Headers.GetValueOrDefault("Authorization")?.Split(\' \')?[1].AsJwt()?.Claims["claim-name"].FirstOrDefault()',
        {},
        "first",
    ),
    ("context.Request.Certificate != null", {}, True),
    ("context.Request.Certificate.Verify() == true", {}, True),
    ("context.Request.Certificate.VerifyNoRevocation() == true", {}, True),
    (
        'context.Request.Certificate.Issuer == "trusted-issuer"',
        {"trusted-issuer": "CN=Expressions Root"},
        True,
    ),
    (
        'context.Request.Certificate.SubjectName.Name == "expected-subject-name"',
        {"expected-subject-name": "CN=client"},
        True,
    ),
    (
        'context.Request.Certificate.Thumbprint == "EXPECTED-THUMBPRINT-IN-UPPER-CASE"',
        {"EXPECTED-THUMBPRINT-IN-UPPER-CASE": CLIENT.thumbprint},
        True,
    ),
    (
        "context.Deployment.Certificates.Any(c => c.Value.Thumbprint == context.Request.Certificate.Thumbprint) == true",
        {},
        True,
    ),
]


def documented_context() -> Context:
    ctx = build_context(
        certificate(CLIENT),
        headers=[
            ("header-name", "expected-header-value"),
            ("Authorization", f"Bearer {JWT}"),
        ],
        body=b'{"root": {"child": "from the body"}}',
        target="/items?parameter-name=expected-value",
    )
    ctx.Request.set_matched_parameters({"parameter-name": "expected-value"})
    ctx.Variables.set("variable-name", "expected-value")
    ctx.Variables.set(
        "response-variable-name",
        Response(200, "OK", Headers([]), b'{"root": {"child": "from the response"}}'),
    )
    ctx.Response = Response(200, "OK", Headers([("Cache-Control", "public, max-age=300")]))
    return ctx


def as_policy_expression(snippet: str) -> str:
    """The cheat-sheet shows bare C#: statements go in `@{...}`, an expression in `@(...)`."""
    return f"@{{{snippet}}}" if "return " in snippet else f"@({snippet})"


@pytest.mark.parametrize(("source", "expected"), LEARN_EXAMPLES)
def test_learn_examples(source: str, expected: object) -> None:
    ctx = documented_context()
    ctx.Request.Headers.set("Authorization", [base64.b64encode(b"user:password").decode()])
    got = compile_expression(source).evaluate(ctx)
    assert got == expected and type(got) is type(expected), f"{source} -> {got!r}"


def test_learn_example_reads_a_stored_max_age() -> None:
    source = LEARN_EXAMPLES[4][0]
    ctx = documented_context()
    ctx.Variables.set("maxAge", "60")
    assert compile_expression(source).evaluate(ctx) == 60


@pytest.mark.parametrize(("snippet", "fill", "expected"), CHEAT_SHEET)
def test_cheat_sheet(snippet: str, fill: dict[str, str], expected: object) -> None:
    source = as_policy_expression(snippet)
    for placeholder, value in fill.items():
        source = source.replace(placeholder, value)
    got = compile_expression(source).evaluate(documented_context())
    assert got == expected and type(got) is type(expected), f"{source} -> {got!r}"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpora not present")
def test_every_cheat_sheet_expression_is_in_the_table() -> None:
    readme = CORPUS / "Azure+api-management-policy-snippets" / "policy-expressions" / "README.md"
    blocks = re.findall(r"```c#\n(.*?)\n```", readme.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 20
    assert {b.strip() for b in blocks} == {s.strip() for s, _, _ in CHEAT_SHEET}

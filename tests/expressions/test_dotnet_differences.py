"""Places where certgate once differed from APIM's .NET on documented examples and real policies.

Each case runs against a real `context` (tests/expressions/contexts.py) and states C#'s result.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from certgate.expressions import ExpressionCompileError, ExpressionRuntimeError, compile_expression
from tests.expressions.contexts import CLIENT, ROOT, build_context, certificate

CASES: list[tuple[str, object]] = [
    # GetValueOrDefault<T>(name) of a missing variable is default(T), and `!` works on it
    ('@(context.Variables.GetValueOrDefault<bool>("missing"))', False),
    ('@(!context.Variables.GetValueOrDefault<bool>("missing"))', True),
    ('@(context.Variables.GetValueOrDefault<int>("missing"))', 0),
    ('@(context.Variables.GetValueOrDefault<string>("missing"))', None),
    ('@(context.Variables.GetValueOrDefault("missing"))', None),
    (
        '@{ object v; return context.Variables.TryGetValue("name", out v) ? (string)v : "-"; }',
        "ada",
    ),
    ('@(context.Request.Url.Query.TryGetValue("page", out var p) ? p[0] : "-")', "2"),
    # a parenthesised value followed by + or - is a binary operation, not a cast (spec 12.9.7)
    ('@("/x/" + (context.Variables["name"]) + "/y")', "/x/ada/y"),
    ('@((context.Variables["count"]) - 1)', 4),
    ('@(10 - (context.Variables["count"]) - 2)', 3),
    ('@((context.Variables["count"]) + (context.Variables["count"]) * 2)', 15),
    ("@{ var a = 3; return (a)-1; }", 2),
    ("@((int)-1.5)", -1),
    ("@((Int64)-1 + 1)", 0),
    ('@((string)(context.Request.Method) + "!")', "POST!"),
    # a cast of a generic call with arguments: `<T>(` is a type argument list (spec 6.2.5)
    ('@(((JObject)context.Request.Body.As<JObject>(true))["name"].ToString())', "Ada"),
    ('@((string)context.Request.Body.As<JObject>(preserveContent: true)["name"])', "Ada"),
    ('@((int)context.Request.Body.As<JObject>(true)["n"] + 1)', 4),
    # LINQ with explicit type arguments
    ('@(new[] {"a", "b"}.ToArray<string>().Length)', 2),
    ('@(context.Request.Headers["Accept"].ToList<string>()[1])', "text/plain"),
    ("@(new List<int> {1, 2, 3}.Select<int, int>(x => x * 2).Sum())", 12),
    # Uri relative to a base
    (
        '@(new Uri(new Uri("https://h/UserProfile/"), "bob smith").AbsoluteUri)',
        "https://h/UserProfile/bob%20smith",
    ),
    ('@(new Uri(new Uri("https://h/a/b"), "../c?x=1").ToString())', "https://h/c?x=1"),
    ('@(new Uri("https://h/a", UriKind.Absolute).Host)', "h"),
    # Json.NET's lenient reader
    (
        "@(JObject.Parse(\"{'a': 1, b: 'it\\\\'s', /* note */ \\\"c\\\": [1, 2,],}\").ToString(Formatting.None))",  # noqa: E501
        '{"a":1,"b":"it\'s","c":[1,2]}',
    ),
    ('@((string)JsonConvert.DeserializeObject<JObject>("{name: \'Ada\'}")["name"])', "Ada"),
    ('@(JArray.Parse("[1, // one\\n 2]").Count)', 2),
    # Regex: .NET syntax translated token by token
    ('@(Regex.IsMatch("abc\\n", "abc\\\\Z"))', True),
    ('@(Regex.IsMatch("abc\\n", @"abc\\z"))', False),
    (r'@(Regex.IsMatch("abc", @"abc\z"))', True),
    (r'@(Regex.IsMatch(@"a\z", @"^a\\z$"))', True),
    (r'@(Regex.Match("1-2x", @"[\d-]+").Value)', "1-2"),
    (r'@(Regex.Match("ab]c", @"[^\]]+").Value)', "ab"),
    ('@(Regex.Match("]a]b", @"[]a]+").Value)', "]a]"),
    ('@(Regex.Match("a[b", @"[[a]+").Value)', "a["),
    (r'@(Regex.Match("xyxy", @"(?<p>xy)\k<p>").Value)', "xyxy"),
    ('@(Regex.Match("xyxy", @"(?\'p\'xy)\\k\'p\'").Groups["p"].Value)', "xy"),
    ('@(Regex.Match("ab", @"(?<=a)b(?<!x)").Value)', "b"),
    (r'@(Regex.Match(@"x\(?<n>", @"\\\(\?<n>").Value)', r"\(?<n>"),
    (
        r'@(Regex.IsMatch("a#", @"a\# # a comment with [", RegexOptions.IgnorePatternWhitespace))',
        True,
    ),
    ('@(Regex.IsMatch("\\u001b", @"^\\e$"))', True),
    ('@(Regex.IsMatch("\\u0003", @"^\\cC$"))', True),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_evaluates_like_dotnet(source: str, expected: object) -> None:
    got = compile_expression(source).evaluate(build_context())
    assert got == expected and type(got) is type(expected), f"{source} -> {got!r}"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"[\Z]", r"Unrecognized escape sequence \\Z"),
        (r"[\A]", r"Unrecognized escape sequence \\A"),
        (r"[a-z-[aeiou]]", "subtraction"),
        (r"(?<open>a)(?<close-open>b)", "balancing"),
        (r"(?(a)b|c)", "conditional"),
        (r"\Ga", r"\\G"),
        (r"[abc", "Unterminated"),
        ("a\\", "end of pattern"),
    ],
)
def test_regex_constructs_dotnet_refuses_or_we_cannot_express(pattern: str, reason: str) -> None:
    """An ArgumentException naming the construct, never a silently different pattern."""
    expr = compile_expression('@(Regex.IsMatch("abc", (string)context.Variables["p"]))')
    ctx = build_context()
    ctx.Variables.set("p", pattern)
    with pytest.raises(ExpressionRuntimeError, match="ArgumentException") as caught:
        expr.evaluate(ctx)
    assert re.search(reason, str(caught.value)), str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        '@(JObject.Parse("{a: b}"))',
        '@(JObject.Parse("{\'a: 1}"))',
        '@(JArray.Parse("[1,,2]"))',
        r'@(JObject.Parse("{\"a\": 1} /* unterminated"))',
    ],
)
def test_json_that_json_net_refuses_is_refused(source: str) -> None:
    with pytest.raises(ExpressionRuntimeError, match="JsonReaderException"):
        compile_expression(source).evaluate(build_context())


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


TOKEN = ".".join(
    [
        _segment({"alg": "RS256", "typ": "JWT"}),
        _segment(
            {
                "sub": "ada",
                "aud": ["api://one", "api://two"],
                "iss": "https://issuer.example",
                "jti": "id-1",
                "exp": 1700000000,
                "iat": 1699990000,
                "nbf": 1699990000,
                "roles": ["reader", "writer"],
                "tid": "t1",
            }
        ),
        "c2lnbmF0dXJl",
    ]
)
BASIC = "Basic " + base64.b64encode(b"ada:s3cret:with-colon").decode()
AUTH = '(context.Request.Headers.GetValueOrDefault("Authorization", ""))'

CREDENTIAL_CASES: list[tuple[str, object]] = [
    (f"@({AUTH}.AsJwt()?.Subject)", "ada"),
    (f"@({AUTH}.AsJwt().Algorithm + {AUTH}.AsJwt().Type)", "RS256JWT"),
    (f'@(string.Join("|", {AUTH}.AsJwt().Audiences))', "api://one|api://two"),
    (f"@({AUTH}.AsJwt().Issuer + {AUTH}.AsJwt().Id)", "https://issuer.example" + "id-1"),
    (f'@({AUTH}.AsJwt().ExpirationTime.Value.ToString("o"))', "2023-11-14T22:13:20.0000000Z"),
    (f"@({AUTH}.AsJwt().IssuedAt < {AUTH}.AsJwt().ExpirationTime)", True),
    (f"@({AUTH}.AsJwt().NotBefore == {AUTH}.AsJwt().IssuedAt)", True),
    (f'@({AUTH}.AsJwt().Claims.GetValueOrDefault("roles", ""))', "reader,writer"),
    (f'@({AUTH}.AsJwt().Claims["tid"][0])', "t1"),
    (f'@({AUTH}.AsJwt().Claims.ContainsKey("missing"))', False),
    (
        f'@{{ Jwt jwt; return {AUTH}.TryParseJwt(out jwt) ? jwt.Subject : "invalid"; }}',
        "ada",
    ),
    ('@("not.a-token".AsJwt() == null)', True),
    ('@{ Jwt jwt; return "x".TryParseJwt(out jwt) || jwt != null; }', False),
    ('@(context.Request.Headers.GetValueOrDefault("X-Basic").AsBasic().UserId)', "ada"),
    (
        '@(context.Request.Headers.GetValueOrDefault("X-Basic").AsBasic().Password)',
        "s3cret:with-colon",
    ),
    (f"@({AUTH}.AsBasic() == null)", True),
    (
        '@{ BasicAuthCredentials c; return context.Request.Headers.GetValueOrDefault("X-Basic").TryParseBasic(out c) ? c.UserId : "-"; }',  # noqa: E501
        "ada",
    ),
    # IUrl.ToUri()
    (
        "@(context.Request.Url.ToUri().AbsoluteUri)",
        "https://api.example.com/orders/42?page=2&sort=desc",
    ),
    ("@(context.Request.OriginalUrl.ToUri().Segments[2])", "42"),
    ("@(context.Request.Url.ToUri().Query)", "?page=2&sort=desc"),
]


@pytest.mark.parametrize(("source", "expected"), CREDENTIAL_CASES)
def test_credentials_and_urls(source: str, expected: object) -> None:
    ctx = build_context(headers=[("Authorization", f"Bearer {TOKEN}"), ("X-Basic", BASIC)])
    got = compile_expression(source).evaluate(ctx)
    assert got == expected and type(got) is type(expected), f"{source} -> {got!r}"


def test_request_without_body_has_null_body() -> None:
    """APIM documents `context.Request.Body` as null for a request without a body."""
    is_null = compile_expression("@(context.Request.Body == null)")
    assert is_null.evaluate(build_context(body=None, method="GET")) is True
    assert is_null.evaluate(build_context()) is False
    fallback = compile_expression('@(context.Request.Body?.As<string>() ?? "none")')
    assert fallback.evaluate(build_context(body=None, method="GET")) == "none"
    with pytest.raises(ExpressionRuntimeError, match="NullReferenceException"):
        compile_expression("@(context.Request.Body.As<string>())").evaluate(
            build_context(body=None, method="GET")
        )


def test_body_set_by_a_policy_is_not_null() -> None:
    ctx = build_context(body=None, method="GET")
    ctx.Request.Body.replace(b"set by set-body")
    got = compile_expression("@(context.Request.Body.As<string>(true))").evaluate(ctx)
    assert got == "set by set-body"


XML_BODY = (
    b'<?xml version="1.0"?><r xmlns="urn:x" xmlns:p="urn:p">'
    b"<conditionValue>true</conditionValue>"
    b'<item id="1" p:k="v">one</item><item id="2">two<b>!</b></item>\n  '
    b"<SignedOid>oid</SignedOid><empty>  </empty></r>"
)
BODY_ROOT = "context.Request.Body.As<XElement>(true)"

XML_CASES: list[tuple[str, object]] = [
    # the corpus's "Extracting multiple values from xml documents" idiom
    (
        "@(XDocument.Parse(context.Request.Body.As<string>(true)).Descendants()"
        '.Where(r => r.Name.LocalName == "conditionValue").First().Value)',
        "true",
    ),
    ("@(context.Request.Body.As<XDocument>(true).Root.Name.LocalName)", "r"),
    (f"@({BODY_ROOT}.Name.NamespaceName)", "urn:x"),
    (f"@({BODY_ROOT}.Name.ToString())", "{urn:x}r"),
    (f"@({BODY_ROOT}.Elements().Count())", 5),
    (f'@({BODY_ROOT}.Element("{{urn:x}}SignedOid")?.Value ?? "")', "oid"),
    (f'@({BODY_ROOT}.Element("SignedOid")?.Value ?? "none")', "none"),
    (f'@({BODY_ROOT}.Descendants("{{urn:x}}item").Last().Value)', "two!"),
    (
        f'@({BODY_ROOT}.Descendants().Where(e => e.Name.LocalName == "item")'
        '.Select(e => e.Attribute("id").Value).Last())',
        "2",
    ),
    (
        f'@({BODY_ROOT}.Descendants().First(e => e.Name.LocalName == "item")'
        '.Attribute("{urn:p}k").Value)',
        "v",
    ),
    (f'@({BODY_ROOT}.Descendants().First(e => e.Name.LocalName == "empty").Value)', ""),
    (
        '@(XElement.Parse("<a><b x=\\"1\\">t</b><c/></a>").ToString())',
        '<a>\n  <b x="1">t</b>\n  <c />\n</a>',
    ),
    ('@((int)XElement.Parse("<n>42</n>") + 1)', 43),
    ('@((bool)XElement.Parse("<b>1</b>") && !(bool)XElement.Parse("<b>false</b>"))', True),
    ('@((string)XElement.Parse("<n>42</n>").Attribute("missing"))', None),
    (
        '@(new XElement("a", new XAttribute("k", "v"), new XElement("b", "t & u")).ToString())',
        '<a k="v">\n  <b>t &amp; u</b>\n</a>',
    ),
    ('@(XName.Get("a", "urn:q").ToString())', "{urn:q}a"),
    (
        '@{ XNamespace x = "urn:x"; XNamespace p = "urn:p"; var item = '
        f'{BODY_ROOT}.Element(x + "item"); return item.Attribute(p + "k").Value; }}',
        "v",
    ),
    (f'@({BODY_ROOT}.Descendants(XNamespace.Get("urn:x") + "item").Count())', 2),
    ('@((XNamespace.Get("urn:m") + "id").ToString())', "{urn:m}id"),
    ('@("{urn:m}id" == XNamespace.Get("urn:m").GetName("id"))', True),
    (f'@({BODY_ROOT}.Descendants().Count(e => "SignedOid" == e.Name.LocalName))', 1),
    ('@(System.Xml.Linq.XDocument.Parse("<a><b/></a>").Root.HasElements)', True),
    # TimeZoneInfo: Windows and IANA ids
    (
        "@(TimeZoneInfo.ConvertTimeFromUtc(new DateTime(2024, 7, 1, 12, 0, 0, DateTimeKind.Utc), "
        'TimeZoneInfo.FindSystemTimeZoneById("W. Europe Standard Time"))'
        '.ToString("yyyy-MM-dd HH:mm"))',
        "2024-07-01 14:00",
    ),
    (
        "@(TimeZoneInfo.ConvertTimeFromUtc(new DateTime(2024, 1, 1, 12, 0, 0), "
        'TimeZoneInfo.FindSystemTimeZoneById("America/New_York")).Hour)',
        7,
    ),
    (
        "@(TimeZoneInfo.ConvertTimeFromUtc(DateTime.UtcNow, "
        'TimeZoneInfo.FindSystemTimeZoneById("Tokyo Standard Time")).Kind.ToString())',
        "Unspecified",
    ),
    (
        "@(TimeZoneInfo.ConvertTimeFromUtc(DateTime.UtcNow, TimeZoneInfo.Utc).Kind.ToString())",
        "Utc",
    ),
    (
        '@(TimeZoneInfo.FindSystemTimeZoneById("India Standard Time").BaseUtcOffset.ToString())',
        "05:30:00",
    ),
    (
        '@(TimeZoneInfo.FindSystemTimeZoneById("Pacific Standard Time")'
        ".IsDaylightSavingTime(new DateTime(2024, 7, 1)))",
        True,
    ),
    (
        "@(TimeZoneInfo.ConvertTimeToUtc(new DateTime(2024, 7, 1, 14, 0, 0), "
        'TimeZoneInfo.FindSystemTimeZoneById("Europe/Paris")).ToString("o"))',
        "2024-07-01T12:00:00.0000000Z",
    ),
    (
        "@(TimeZoneInfo.ConvertTime(DateTimeOffset.FromUnixTimeSeconds(0), "
        'TimeZoneInfo.FindSystemTimeZoneById("Tokyo Standard Time")).Hour)',
        9,
    ),
    ("@(TimeZoneInfo.Utc.Id)", "UTC"),
]


@pytest.mark.parametrize(("source", "expected"), XML_CASES)
def test_xml_and_time_zones(source: str, expected: object) -> None:
    got = compile_expression(source).evaluate(build_context(body=XML_BODY))
    assert got == expected and type(got) is type(expected), f"{source} -> {got!r}"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        # a DTD (entity expansion, external entities) is refused before anything expands
        (
            '@(XElement.Parse("<!DOCTYPE a [<!ENTITY x \\"y\\">]><a>&x;</a>").Value)',
            "XmlException: For security reasons DTD is prohibited",
        ),
        (
            '@(XDocument.Parse("<!DOCTYPE a SYSTEM \\"file:///etc/passwd\\"><a/>").Root)',
            "XmlException: For security reasons DTD is prohibited",
        ),
        ('@(XElement.Parse("<a>").Value)', "XmlException: no element found"),
        ('@(XElement.Parse("").Value)', "XmlException"),
        ('@(TimeZoneInfo.FindSystemTimeZoneById("Nowhere/Zone"))', "TimeZoneNotFoundException"),
        ('@(TimeZoneInfo.FindSystemTimeZoneById("../../etc/passwd"))', "TimeZoneNotFoundException"),
    ],
)
def test_xml_and_time_zone_errors(source: str, error: str) -> None:
    with pytest.raises(ExpressionRuntimeError) as caught:
        compile_expression(source).evaluate(build_context())
    assert error in str(caught.value)


def test_deep_xml_does_not_exhaust_the_stack() -> None:
    depth = 50_000
    ctx = build_context(body=b"<a>" * depth + b"x" + b"</a>" * depth)
    expr = compile_expression("@(context.Request.Body.As<XElement>(true).Descendants().Count())")
    assert expr.evaluate(ctx) == depth - 1


def test_certificates_and_rsa_keys() -> None:
    """A PFX loaded by an expression carries its key; a client certificate has none."""
    signer = ROOT.issue("signer", key_kind="rsa")
    ctx = build_context(certificate(CLIENT))
    ctx.Variables.set("pfx", signer.pfx("secret"))
    ctx.Variables.set("der", signer.der)
    load = 'new X509Certificate2((byte[])context.Variables["pfx"], "secret")'

    def run(source: str) -> object:
        return compile_expression(source).evaluate(ctx)

    assert run(f"@({load}.HasPrivateKey)") is True
    assert run(f"@({load}.Thumbprint)") == signer.thumbprint
    assert run(f"@({load}.GetRSAPrivateKey().KeySize)") == 2048
    assert run('@(new X509Certificate2((byte[])context.Variables["der"]).HasPrivateKey)') is False
    assert run("@(context.Request.Certificate.HasPrivateKey)") is False
    assert run("@(context.Request.Certificate.GetRSAPrivateKey() == null)") is True
    assert run("@(context.Request.Certificate.GetRSAPublicKey() == null)") is True  # an EC key
    round_trip = (
        f'@{{ var cert = {load}; var data = Encoding.UTF8.GetBytes("payload"); '
        "var sig = (cert.GetRSAPrivateKey() as RSACng).SignData(data, HashAlgorithmName.SHA256, "
        "RSASignaturePadding.Pss); return cert.GetRSAPublicKey().VerifyData(data, sig, "
        "HashAlgorithmName.SHA256, RSASignaturePadding.Pss) && !cert.GetRSAPublicKey()"
        '.VerifyData(Encoding.UTF8.GetBytes("other"), sig, HashAlgorithmName.SHA256, '
        "RSASignaturePadding.Pss); }"
    )
    assert run(round_trip) is True
    with pytest.raises(ExpressionRuntimeError) as caught:
        run('@(new X509Certificate2((byte[])context.Variables["pfx"], "wrong").Thumbprint)')
    assert caught.value.cs_type == "CryptographicException"
    assert "secret" not in str(caught.value)


def test_lenient_json_reader_is_linear_on_hostile_text() -> None:
    """Unterminated strings and comments, escaped quotes: scanned once, not once per quote."""
    expr = compile_expression('@(JToken.Parse((string)context.Variables["text"]).Type)')
    for hostile in ('"' + '\\"' * 200_000, ",/*" * 100_000, "['" + "\\'" * 200_000):
        ctx = build_context()
        ctx.Variables.set("text", hostile)
        with pytest.raises(ExpressionRuntimeError, match="JsonReaderException"):
            expr.evaluate(ctx)


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        ("@{\n  var x = 1;\n  return (x) - (x) - nope;\n}", 3, 22),
        ('@((context.Variables["a"]) + (context.Variables["b"]) + nope)', 1, 57),
    ],
)
def test_positions_survive_the_cast_disambiguation(source: str, line: int, column: int) -> None:
    """The parser adds parentheses to read `(x) - y` as C# does; errors still point at the
    original text."""
    with pytest.raises(ExpressionCompileError) as caught:
        compile_expression(source)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert "'nope' does not exist" in caught.value.message


def test_form_body_and_trace() -> None:
    """`Body.AsFormUrlEncodedContent()` (the corpus's OAuth callback) and `context.Trace()`."""
    ctx = build_context(body=b"code=a%2Bb&state=s+1&state=s2&empty=")
    code = compile_expression(
        '@(context.Request.Body.AsFormUrlEncodedContent(preserveContent: true)["code"].Single())'
    )
    assert code.evaluate(ctx) == "a+b"
    state = compile_expression(
        '@(string.Join("|", context.Request.Body.AsFormUrlEncodedContent(true)["state"]))'
    )
    assert state.evaluate(ctx) == "s 1|s2"
    trace = compile_expression('@{ context.Trace("reached " + 42); return 1; }')
    assert trace.evaluate(ctx) == 1
    assert ctx.traces == [{"source": "expression", "severity": "verbose", "message": "reached 42"}]


def test_long_chains_of_parenthesised_operands() -> None:
    """Every `(x) - y` of a chain is settled in one parse round (no reparse per operand)."""
    minus = " - ".join('(context.Variables["count"])' for _ in range(5))
    assert compile_expression(f"@({minus})").evaluate(build_context()) == -15
    nested = '@(1 - ((context.Variables["count"]) - 2) - (context.Variables["count"]))'
    assert compile_expression(nested).evaluate(build_context()) == -7
    plus = " + ".join('(context.Variables["name"])' for _ in range(120))
    assert compile_expression(f"@({plus})").evaluate(build_context()) == "ada" * 120

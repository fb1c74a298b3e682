"""Places where certgate once differed from APIM's .NET on documented examples and real policies.

Each case runs against a real `context` (tests/expressions/contexts.py) and states C#'s result.
"""

from __future__ import annotations

import pytest

from certgate.expressions import ExpressionRuntimeError, compile_expression
from tests.expressions.contexts import build_context

CASES: list[tuple[str, object]] = [
    # GetValueOrDefault<T>(name) of a missing variable is default(T), and `!` works on it
    ('@(context.Variables.GetValueOrDefault<bool>("missing"))', False),
    ('@(!context.Variables.GetValueOrDefault<bool>("missing"))', True),
    ('@(context.Variables.GetValueOrDefault<int>("missing"))', 0),
    ('@(context.Variables.GetValueOrDefault<string>("missing"))', None),
    ('@(context.Variables.GetValueOrDefault("missing"))', None),
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
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_evaluates_like_dotnet(source: str, expected: object) -> None:
    got = compile_expression(source).evaluate(build_context())
    assert got == expected and type(got) is type(expected), f"{source} -> {got!r}"


@pytest.mark.parametrize(
    "source",
    ['@(JObject.Parse("{a: b}"))', '@(JObject.Parse("{\'a: 1}"))', '@(JArray.Parse("[1,,2]"))'],
)
def test_json_that_json_net_refuses_is_refused(source: str) -> None:
    with pytest.raises(ExpressionRuntimeError, match="JsonReaderException"):
        compile_expression(source).evaluate(build_context())

"""`find_expressions` locates expressions in raw APIM documents, strings and all."""

from __future__ import annotations

from certgate.expressions import find_expressions


def spans(text: str) -> list[str]:
    return [text[s:e] for s, e in find_expressions(text)]


def test_attribute_with_raw_quotes_and_operators() -> None:
    doc = '<when condition="@(context.Request.Headers.GetValueOrDefault("a", "") == "x" && 1 < 2)">'
    assert spans(doc) == ['@(context.Request.Headers.GetValueOrDefault("a", "") == "x" && 1 < 2)']


def test_brackets_inside_strings_chars_and_comments_do_not_count() -> None:
    doc = (
        '<set-body>@{ var s = ")}\\""; char c = \')\'; // ) }\n'
        '/* } */ return s + $"{(c == \'(\' ? "{" : "}")}" + @""")"; }</set-body>'
    )
    assert spans(doc) == [doc[len("<set-body>") : -len("</set-body>")]]


def test_entity_quoted_strings() -> None:
    doc = '<x a="@(&quot;)&quot; + &quot;(&quot;)" b="@(1)"/>'
    assert spans(doc) == ["@(&quot;)&quot; + &quot;(&quot;)", "@(1)"]


def test_several_expressions_and_plain_at_signs() -> None:
    doc = 'mail@example.com <a v="@(1)">x @{ return 2; } y</a> @ ( @(3'
    assert spans(doc) == ["@(1)", "@{ return 2; }"]


def test_interpolation_holes_with_nested_braces() -> None:
    doc = '@($"{{lit}} {new[] { 1 }.Length} {"}"}")'
    assert spans(doc) == [doc]

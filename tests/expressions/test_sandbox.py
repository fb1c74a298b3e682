"""Refusals at compile time (with positions), run-time failures, and the loop budget."""

from __future__ import annotations

import pytest

from certgate.expressions import (
    ExpressionCompileError,
    ExpressionRuntimeError,
    compile_expression,
)
from tests.expressions.contexts import build_context


@pytest.mark.parametrize(
    ("source", "message", "line", "column"),
    [
        ("@(context.GetType())", "unsupported: member 'GetType'", 1, 11),
        ("@(context.Request.__class__)", "unsupported: member '__class__'", 1, 19),
        (
            '@(System.IO.File.ReadAllText("/etc/passwd"))',
            "unsupported: type 'System.IO.File'",
            1,
            3,
        ),
        ('@(System.Diagnostics.Process.Start("sh"))', "unsupported: type", 1, 3),
        ("@(typeof(string))", "unsupported: typeof", 1, 3),
        ('@(Activator.CreateInstance("x"))', "unsupported: type 'Activator'", 1, 3),
        ("@(new XmlDocument())", "unsupported: type 'XmlDocument'", 1, 7),
        ('@(Convert.Frobnicate("x"))', "unsupported: member 'Convert.Frobnicate'", 1, 11),
        ("@{\n  var x = 1;\n  lock (x) { }\n  return x;\n}", "unsupported: statement 'lock'", 3, 3),
        ("@{\n  return context.Request.Foo;\n}", "unsupported: member 'Foo'", 2, 26),
        ("@(from x in y select x)", "unsupported: expression 'query'", 1, 3),
        ("@(undefinedName + 1)", "the name 'undefinedName' does not exist", 1, 3),
        ("@(1 +)", "syntax error", 1, 6),
        ('@("unterminated)', "syntax error", 1, 16),
        ("@(a) + (b)", "syntax error", 1, 1),
        ("context.Request", "@(...) or @{...}", 1, 1),
    ],
)
def test_refused_with_position(source: str, message: str, line: int, column: int) -> None:
    with pytest.raises(ExpressionCompileError) as info:
        compile_expression(source)
    err = info.value
    assert message in err.message
    assert (err.line, err.column) == (line, column), err


@pytest.mark.parametrize(
    ("source", "cs_type"),
    [
        ("@(((string)null).Length)", "NullReferenceException"),
        ("@(context.Request.Certificate.Thumbprint)", "NullReferenceException"),
        ('@((string)context.Variables["absent"])', "KeyNotFoundException"),
        ('@(int.Parse("12x"))', "FormatException"),
        ('@((string)context.Variables["count"])', "InvalidCastException"),
        ('@((int)context.Variables["nothing"])', "NullReferenceException"),
        ("@(1 / (context.Request.Url.Port - 443))", "DivideByZeroException"),
        ("@(new[] {1}[3])", "IndexOutOfRangeException"),
        ('@(JObject.Parse("{nope"))', "JsonReaderException"),
        ('@(Convert.FromBase64String("***"))', "FormatException"),
        ("@(new int[0].First())", "InvalidOperationException"),
        ('@("abc".Substring(5))', "ArgumentOutOfRangeException"),
        ("@(context.Request.Headers.Thumbprint)", "MissingMemberException"),
    ],
)
def test_runtime_failures_name_the_dotnet_exception(source: str, cs_type: str) -> None:
    expr = compile_expression(source)
    with pytest.raises(ExpressionRuntimeError) as info:
        expr.evaluate(build_context())
    assert info.value.cs_type == cs_type
    assert info.value.reason == "ExpressionValueEvaluationFailure"


@pytest.mark.parametrize(
    "source",
    [
        "@{ while (true) { } }",
        "@{ var i = 0; for (;;) { i++; } }",
        '@{ var s = "x"; while (true) { s = s + s; } }',
        "@{ int F(int n) { return F(n + 1); } return F(0); }",
        "@{ while (true) { try { var x = 1; } catch (Exception) { } } }",
        "@(Regex.IsMatch(new string('a', 40), \"(a|aa)+c\"))",
    ],
)
def test_runaway_blocks_fail_without_hurting_the_process(source: str) -> None:
    expr = compile_expression(source)
    with pytest.raises(ExpressionRuntimeError):
        expr.evaluate(build_context())
    assert compile_expression("@(1 + 1)").evaluate(None) == 2


def test_budget_cannot_be_caught() -> None:
    expr = compile_expression(
        '@{ try { while (true) { } } catch (Exception) { return "caught"; } return "no"; }'
    )
    with pytest.raises(ExpressionRuntimeError):
        expr.evaluate(build_context())


def test_body_flags() -> None:
    req = compile_expression("@(context.Request.Body.As<string>(preserveContent: true))")
    resp = compile_expression('@(context.Response.Body.As<JObject>()["x"])')
    var = compile_expression('@(((IResponse)context.Variables["r"]).Body.As<string>())')
    none = compile_expression("@(context.Request.Method)")
    assert (req.uses_request_body, req.uses_response_body) == (True, False)
    assert (resp.uses_request_body, resp.uses_response_body) == (False, True)
    assert (var.uses_request_body, var.uses_response_body) == (False, False)
    assert (none.uses_request_body, none.uses_response_body) == (False, False)


def test_compiled_expression_is_reusable_and_isolated() -> None:
    expr = compile_expression("@{ var n = 0; n++; return n; }")
    assert [expr.evaluate(None) for _ in range(3)] == [1, 1, 1]

"""A failure of the compiler or of a .NET shim is logged and reported as internal, never passed
off as the user's construct being unsupported."""

from __future__ import annotations

import logging

import pytest

from certgate.expressions import ExpressionCompileError, ExpressionRuntimeError, compile_expression
from certgate.expressions.compiler import Compiler
from tests.expressions.contexts import build_context


def test_compiler_failure_is_an_internal_error_at_its_position(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault injection: the handler of one construct raises as a compiler bug would."""

    def broken(self: Compiler, node: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(Compiler, "x_real_literal", broken)
    source = '@{\n  var secret = "s3cr3t-named-value";\n  return 1 + 2.5;\n}'
    with (
        caplog.at_level(logging.ERROR, logger="certgate.expressions"),
        pytest.raises(ExpressionCompileError) as caught,
    ):
        compile_expression(source)
    err = caught.value
    assert err.message.startswith("internal error: the compiler failed on this real_literal")
    assert "KeyError" in err.message and not err.message.startswith("unsupported")
    assert (err.line, err.column) == (3, 14)
    record = next(r for r in caplog.records if "internal error compiling" in r.getMessage())
    assert "line 3, column 14" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "s3cr3t" not in caplog.text  # the source (named values, secrets) is never logged


def test_real_refusals_stay_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="certgate.expressions"),
        pytest.raises(ExpressionCompileError, match="unsupported: type 'XmlDocument'"),
    ):
        compile_expression("@(new XmlDocument())")
    assert not caplog.records


def test_shim_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A call the shim's signature does not take (here an overload .NET lacks) is logged."""
    expr = compile_expression('@("abcdef".Substring(1, 2, 3))')
    with (
        caplog.at_level(logging.WARNING, logger="certgate.expressions"),
        pytest.raises(ExpressionRuntimeError) as caught,
    ):
        expr.evaluate(build_context())
    assert caught.value.cs_type == "ArgumentException"
    record = next(r for r in caplog.records if "internal error in a .NET shim" in r.getMessage())
    assert record.exc_info is not None and record.exc_info[0] is TypeError


def test_dotnet_exceptions_from_bad_input_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    expr = compile_expression('@(int.Parse("not a number"))')
    with (
        caplog.at_level(logging.WARNING, logger="certgate.expressions"),
        pytest.raises(ExpressionRuntimeError, match="FormatException"),
    ):
        expr.evaluate(build_context())
    assert not caplog.records

"""A compiled expression is cheap enough to run on every request: measured against the same check
written in plain Python in the same run, so a loaded machine slows both alike (absolute figures:
bench/)."""

from __future__ import annotations

import time

from certgate.expressions import compile_expression
from tests.expressions.contexts import CLIENT, build_context, certificate

THUMBPRINT_CHECK = (
    "@(context.Request.Certificate == null "
    f'|| context.Request.Certificate.Thumbprint != "{CLIENT.thumbprint}")'
)


def per_call(fn, n: int = 20_000) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def test_thumbprint_check_costs_a_few_plain_python_checks() -> None:
    expr = compile_expression(THUMBPRINT_CHECK)
    ctx = build_context(certificate(CLIENT))
    assert expr.evaluate(ctx) is False
    thumbprint = CLIENT.thumbprint

    def plain() -> bool:
        cert = ctx.Request.Certificate
        return cert is None or cert.Thumbprint != thumbprint

    cost, baseline = per_call(lambda: expr.evaluate(ctx)), per_call(plain)
    print(f"thumbprint check: {cost * 1e6:.2f} us, {cost / baseline:.1f}x plain Python")
    # About 8x on the reference machine: the compiled closures add a few calls, nothing per node.
    assert cost < 40 * baseline

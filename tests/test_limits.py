"""Every limit is a `certgate serve` flag with its documented default; nonsense is refused."""

from __future__ import annotations

import dataclasses

import pytest

from certgate.cli import build_parser
from certgate.limits import Limits, limits_from_args


def test_every_limit_has_a_flag_with_its_default() -> None:
    args = build_parser().parse_args(["serve"])
    assert limits_from_args(args) == Limits()


def test_a_flag_sets_its_limit() -> None:
    args = build_parser().parse_args(["serve", "--crl-fetch-concurrency", "2"])
    assert limits_from_args(args).crl_fetch_concurrency == 2


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_values_that_would_disable_a_limit_are_refused(value: str, capsys) -> None:
    for item in dataclasses.fields(Limits):
        if isinstance(item.default, str) or (item.metadata["minimum"] <= 0 and value == "0"):
            continue
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", item.metadata["flag"], value])
        assert f"argument {item.metadata['flag']}:" in capsys.readouterr().err


def test_a_limit_that_may_be_zero_accepts_zero() -> None:
    args = build_parser().parse_args(["serve", "--crl-max-redirects", "0"])
    assert limits_from_args(args).crl_max_redirects == 0

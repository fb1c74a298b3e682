"""The private OpenSSL bindings certgate calls are checked when the gateway is imported."""

from __future__ import annotations

from types import SimpleNamespace

from certgate.gateway import openssl


def test_every_symbol_the_transport_uses_exists_in_this_build() -> None:
    assert openssl.missing_symbols(openssl.lib) == []


def test_a_build_without_a_symbol_is_named() -> None:
    bindings = SimpleNamespace(**{name: object() for name in openssl.SYMBOLS[1:]})
    assert openssl.missing_symbols(bindings) == [openssl.SYMBOLS[0]]

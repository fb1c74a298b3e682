"""Multi-statement programs taken verbatim from the APIM corpus run with C#'s results."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from urllib.parse import parse_qs, quote

import pytest

from certgate.expressions import compile_expression
from certgate.policy.context import LastError
from tests.expressions.contexts import ROOT, build_context
from tests.expressions.test_corpus_compile import CORPUS, corpus_expressions

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpora not present")


def corpus_program(marker: str) -> str:
    return next(x for x in corpus_expressions() if marker in x)


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [("10.1.2.3", "1"), ("192.168.5.5:1234", "1"), ("172.20.0.1", "1"), ("8.8.8.8", "8.8.8.8")],
)
def test_ip_filter_with_cidr_arithmetic(forwarded_for: str, expected: str) -> None:
    """Filter on IP Address when using Application Gateway: int shifts, BitConverter, byte[]."""
    program = compile_expression(corpus_program("HostToNetworkOrder"))
    ctx = build_context(headers=[("X-Forwarded-For", forwarded_for)])
    assert program.evaluate(ctx) == expected


def test_stackify_log_document_is_indented_json() -> None:
    """Log errors to Stackify: nested `new JObject(new JProperty(...))` and `ToString()`."""
    ctx = build_context()
    ctx.LastError = LastError("forward-request", "BackendConnectionFailure", "boom")
    text = compile_expression(corpus_program("stackify-agent")).evaluate(ctx)
    assert text.startswith('{\n  "Environment": "1",\n  "ServerName": "certgate",')
    doc = json.loads(text)
    assert doc["Msgs"][0]["Msg"] == "boom"
    assert doc["Msgs"][0]["SrcMethod"] == "forward-request"
    assert doc["Msgs"][0]["EpochMs"] % 1000 == 0


def test_relay_sas_token_is_signed() -> None:
    """Generate Azure Relay Token: TimeSpan arithmetic, HMACSHA256, Uri.EscapeDataString."""
    ctx = build_context()
    uri = "https://x.servicebus.windows.net/q"
    for name, value in {"resourceUri": uri, "accessKey": "a2V5", "keyName": "Root"}.items():
        ctx.Variables.set(name, value)
    token = compile_expression(corpus_program("sinceEpoch")).evaluate(ctx)
    assert token.startswith("SharedAccessSignature sr=")
    fields = parse_qs(token.removeprefix("SharedAccessSignature "))
    expiry = fields["se"][0]
    to_sign = quote(uri, safe="-_.~") + "\n" + expiry
    mac = hmac.new(b"a2V5", to_sign.encode(), hashlib.sha256).digest()
    assert fields["sig"][0] == base64.b64encode(mac).decode()
    assert fields["sr"][0] == uri and fields["skn"][0] == "Root"


def test_correlation_id_from_guid_and_ticks() -> None:
    """Add correlation id: byte arrays, Array.Copy, `unchecked` shifts, `new Guid(byte[])`."""
    value = compile_expression(corpus_program("guidBinary")).evaluate(build_context())
    assert len(value) == 36 and value.count("-") == 4


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_client_assertion_is_signed_with_the_key_vault_pfx() -> None:
    """Get OAuth2 access token ... using certificate from key vault: `new X509Certificate2(pfx,
    (string)null)`, `GetRSAPrivateKey() as RSACng`, `SignData(..., HashAlgorithmName.SHA256,
    RSASignaturePadding.Pkcs1)`: the JWT verifies with the certificate's public key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signer = ROOT.issue("assertion signer", key_kind="rsa")
    ctx = build_context()
    ctx.Variables.set("keyVaultCertBase64", base64.b64encode(signer.pfx(None)).decode())
    ctx.Variables.set("authorizationServer", "https://login.example/tenant/oauth2/token")
    ctx.Variables.set("clientId", "client-1")
    token = compile_expression(corpus_program("GetRSAPrivateKey")).evaluate(ctx)
    header, claims, signature = token.split(".")
    signer.cert.public_key().verify(
        _b64url_decode(signature),
        f"{header}.{claims}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    head = json.loads(_b64url_decode(header))
    assert head["alg"] == "RS256"
    assert _b64url_decode(head["kid"]) == signer.cert.fingerprint(hashes.SHA1())
    body = json.loads(_b64url_decode(claims))
    assert body["iss"] == body["sub"] == "client-1"
    assert body["aud"] == "https://login.example/tenant/oauth2/token"
    assert int(body["exp"]) - int(body["nbf"]) == 1200


def test_every_corpus_expression_runs_or_fails_as_dotnet(caplog: pytest.LogCaptureFixture) -> None:
    """Each compiled corpus expression, run against a real context, returns or raises a .NET
    exception (KeyNotFoundException for the variables this context lacks...): never a Python
    error from a shim, which would be logged as internal."""
    from certgate.expressions import ExpressionCompileError, ExpressionRuntimeError
    from tests.expressions.contexts import CLIENT, certificate

    ran = 0
    with caplog.at_level(logging.WARNING, logger="certgate.expressions"):
        for source in corpus_expressions():
            try:
                expr = compile_expression(source)
            except ExpressionCompileError:
                continue  # listed in corpus_refusals.txt (test_corpus_compile)
            try:
                expr.evaluate(build_context(certificate(CLIENT)))
            except ExpressionRuntimeError:
                pass
            ran += 1
    assert ran > 600
    internal = [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()]
    assert not internal, internal

"""validate-jwt / validate-azure-ad-token through a real gateway, with a real local OpenID
discovery server (HTTPS) serving keys generated here and tokens signed here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from certgate.certs.material import CertificateMaterial
from certgate.expressions.dotnet.auth import MAX_TOKEN
from certgate.gateway.upstream import Forwarder
from certgate.limits import Limits
from certgate.policy.catalog import MemoryCatalog, PlaceholderCatalog
from certgate.policy.errors import PolicyValidationError
from certgate.policy.loader import parse_document
from tests.pki import issue
from tests.upstream.conftest import snapshot
from tests.upstream.openid_server import OpenIdServer
from tests.upstream.policy_gateway import client, document, start_gateway

ISSUER = "https://issuer.test/"
AUDIENCE = "api://certgate"
SECRET = b"a symmetric secret of 32 bytes!!"
SEALING = b"a 32-byte key that decrypts JWEs"
TENANT = "contoso-tenant"
AAD_ISSUER = f"https://login.test/{TENANT}/v2.0"
REASON = (
    "<set-header name='X-Reason' exists-action='override'><value>"
    '@(context.LastError.Source + ":" + context.LastError.Reason)</value></set-header>'
)
MESSAGE = (
    "<set-header name='X-Message' exists-action='override'><value>"
    "@(context.LastError.Message)</value></set-header>"
)
SUBJECT = (
    '<return-response><set-body>@(((Jwt)context.Variables["jwt"]).Subject + "|" + '
    '((Jwt)context.Variables["jwt"]).Claims.GetValueOrDefault("roles", ""))</set-body>'
    "</return-response>"
)


@pytest.fixture(scope="module")
def keys():
    return {
        name: rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for name in ("k1", "k2", "rogue", "sealing")
    }


def jwk(private, kid: str) -> dict:
    data = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


def token(private, kid: str | None = "k1", alg: str = "RS256", **claims) -> str:
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "roles": ["reader"],
        "exp": int(time.time()) + 600,
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, private, algorithm=alg, headers=headers)


def encrypt(plaintext: str | bytes, key, alg: str, enc: str, **header) -> str:
    """A compact JWE made by jwcrypto, an implementation independent of the gateway's."""
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    if isinstance(key, bytes):
        recipient = jwcrypto_jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(key).decode())
    else:
        recipient = jwcrypto_jwk.JWK.from_pyca(key.public_key())
    sealed = jwcrypto_jwe.JWE(data, json.dumps({"alg": alg, "enc": enc, **header}))
    sealed.add_recipient(recipient)
    return sealed.serialize(compact=True)


def _documents(idp: OpenIdServer, keys) -> dict[str, str]:
    numbers = keys["k1"].public_key().public_numbers()

    def b64url(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    checks = (
        f"<audiences><audience>{AUDIENCE}</audience></audiences>"
        f"<issuers><issuer>{ISSUER}</issuer></issuers>"
        "<required-claims><claim name='roles' match='any'><value>reader</value>"
        "<value>writer</value></claim></required-claims>"
    )
    return {
        "oidc": document(
            "<validate-jwt header-name='Authorization' output-token-variable-name='jwt'>"
            f"<openid-config url='{idp.url}/.well-known/openid-configuration'/>{checks}"
            "</validate-jwt>" + SUBJECT,
            on_error=REASON + MESSAGE,
        ),
        "hs": document(
            "<validate-jwt header-name='Authorization' require-scheme='Bearer' clock-skew='120' "
            "failed-validation-httpcode='403' failed-validation-error-message='Go away.' "
            "output-token-variable-name='jwt'><issuer-signing-keys>"
            f"<key>{base64.b64encode(SECRET).decode()}</key></issuer-signing-keys>"
            "</validate-jwt>" + SUBJECT,
            on_error=REASON + MESSAGE,
        ),
        "ne": document(
            "<validate-jwt query-parameter-name='token' output-token-variable-name='jwt'>"
            f"<issuer-signing-keys><key id='k1' n='{b64url(numbers.n)}' "
            f"e='{b64url(numbers.e)}'/></issuer-signing-keys></validate-jwt>" + SUBJECT,
            on_error=REASON + MESSAGE,
        ),
        "unsigned": document(
            "<validate-jwt header-name='Authorization' require-signed-tokens='false' "
            "require-expiration-time='false' output-token-variable-name='jwt'/>" + SUBJECT,
            on_error=REASON + MESSAGE,
        ),
        "cert": document(
            "<validate-jwt header-name='Authorization' output-token-variable-name='jwt'>"
            "<issuer-signing-keys><key certificate-id='a'/></issuer-signing-keys>"
            "</validate-jwt>" + SUBJECT,
            on_error=REASON + MESSAGE,
        ),
        "jwe": document(
            "<validate-jwt header-name='Authorization' output-token-variable-name='jwt'>"
            f"<openid-config url='{idp.url}/.well-known/openid-configuration'/>"
            "<decryption-keys><key certificate-id='sealing'/>"
            f"<key id='sym'>{base64.b64encode(SEALING).decode()}</key></decryption-keys>"
            f"{checks}</validate-jwt>" + SUBJECT,
            on_error=REASON + MESSAGE,
        ),
        "jwe-unsigned": document(
            "<validate-jwt header-name='Authorization' require-signed-tokens='false' "
            "output-token-variable-name='jwt'><decryption-keys>"
            f"<key>{base64.b64encode(SEALING).decode()}</key></decryption-keys>"
            "</validate-jwt>" + SUBJECT,
            on_error=REASON + MESSAGE,
        ),
        "aad": document(
            f"<validate-azure-ad-token tenant-id='{TENANT}' output-token-variable-name='jwt'>"
            "<client-application-ids><application-id>app-1</application-id>"
            "</client-application-ids><audiences>"
            f"<audience>{AUDIENCE}</audience></audiences></validate-azure-ad-token>" + SUBJECT,
            on_error=REASON + MESSAGE,
        ),
    }


async def _gateway(certs, backend, keys, **limits):
    idp = await OpenIdServer.start(certs.server, ISSUER, [jwk(keys["k1"], "k1")])
    forwarder = Forwarder(Limits(backend_timeout=10, azure_ad_authority=idp.url, **limits))
    documents = _documents(idp, keys)
    documents["slowidp"] = document(
        "<validate-jwt header-name='Authorization'>"
        f"<openid-config url='{backend.url()}/slow'/></validate-jwt>",
        on_error=REASON + MESSAGE,
    )
    documents["second"] = documents["oidc"].replace("/.well-known/", "/second/.well-known/")
    sealing = issue("token decryption", key=keys["sealing"])
    snap = snapshot(certs, a=certs.a, sealing=CertificateMaterial(sealing.cert, sealing.key))
    server = await start_gateway(certs, forwarder, snap, documents, backend.url())
    return idp, forwarder, server


@pytest.fixture
async def gateway_with(certs, backend, keys):
    """Starts a gateway with the given limits; everything started is stopped afterwards."""
    started = []

    async def start(**limits):
        idp, forwarder, server = await _gateway(certs, backend, keys, **limits)
        started.append((idp, forwarder, server))
        return idp, server

    yield start
    for idp, forwarder, server in started:
        await server.close()
        forwarder.close()
        await idp.stop()


@pytest.fixture
async def setup(gateway_with):
    return await gateway_with()


async def _get(certs, server, path: str, value: str | None, header: str = "Authorization"):
    headers = {header: value} if value is not None else {}
    async with client(certs, server) as http:
        return await http.get(path, headers=headers)


def _refused(response, status: int, reason: str, source: str = "validate-jwt") -> dict:
    assert response.status_code == status, response.text
    assert response.headers["x-reason"] == f"{source}:{reason}"
    body = response.json()
    assert body["statusCode"] == status
    return body


async def test_valid_token_passes_and_the_output_variable_is_usable(certs, keys, setup):
    idp, server = setup
    response = await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k1'])}")
    assert response.status_code == 200, response.text
    assert response.text == "alice|reader"
    again = await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k1'], sub='bob')}")
    assert again.text == "bob|reader"
    assert idp.fetches["/keys"] == 1  # the document and keys are cached


async def test_missing_token_is_401_with_a_bare_challenge(certs, setup):
    _, server = setup
    response = await _get(certs, server, "/oidc/x", None)
    body = _refused(response, 401, "TokenNotPresent")
    assert body["message"] == "JWT not present."
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 60}, "TokenExpired"),
        ({"nbf": int(time.time()) + 3600}, "TokenNotYetValid"),
        ({"exp": None}, "TokenInvalid"),
        ({"aud": "api://someone-else"}, "TokenAudienceNotAllowed"),
        ({"iss": "https://evil.test/"}, "TokenIssuerNotAllowed"),
        ({"roles": None}, "TokenClaimNotFound"),
        ({"roles": ["admin"]}, "TokenClaimValueNotAllowed"),
    ],
)
async def test_claims_refused(certs, keys, setup, claims, reason):
    _, server = setup
    response = await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k1'], **claims)}")
    _refused(response, 401, reason)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_bad_signature_is_refused(certs, keys, setup):
    _, server = setup
    forged = token(keys["rogue"], kid="k1")  # claims the trusted key's id
    _refused(await _get(certs, server, "/oidc/x", f"Bearer {forged}"), 401, "TokenSignatureInvalid")
    tampered = token(keys["k1"]).split(".")
    tampered[1] = base64.urlsafe_b64encode(b'{"sub":"mallory","aud":"x"}').rstrip(b"=").decode()
    response = await _get(certs, server, "/oidc/x", "Bearer " + ".".join(tampered))
    _refused(response, 401, "TokenSignatureInvalid")


async def test_algorithm_confusion_and_unsigned_tokens_are_refused(certs, keys, setup):
    """An HS256 token keyed with the provider's public key, and alg=none, never pass."""
    _, server = setup
    public_pem = (
        keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1"}').rstrip(b"=")
    body = token(keys["k1"]).split(".")[1].encode()
    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    confused = b".".join([header, body, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    response = await _get(certs, server, "/oidc/x", f"Bearer {confused}")
    _refused(response, 401, "TokenSignatureInvalid")
    unsigned = jwt.encode({"sub": "x", "aud": AUDIENCE, "iss": ISSUER}, None, algorithm="none")
    response = await _get(certs, server, "/oidc/x", f"Bearer {unsigned}")
    _refused(response, 401, "TokenSignatureInvalid")


async def test_unsigned_tokens_pass_only_where_allowed(certs, keys, setup):
    _, server = setup
    unsigned = jwt.encode({"sub": "alice", "roles": "reader"}, None, algorithm="none")
    assert (await _get(certs, server, "/unsigned/x", unsigned)).text == "alice|reader"
    forged = token(keys["rogue"])  # signed, but nothing to check it with
    _refused(await _get(certs, server, "/unsigned/x", forged), 401, "TokenSignatureInvalid")


async def test_key_from_a_stored_certificate(certs, keys, setup):
    _, server = setup
    private = certs.a.private_key
    alg = {"secp256r1": "ES256", "secp384r1": "ES384"}[private.curve.name]
    signed = token(private, kid=None, alg=alg)
    assert (await _get(certs, server, "/cert/x", f"Bearer {signed}")).text == "alice|reader"
    other = token(keys["k1"], kid=None)
    _refused(await _get(certs, server, "/cert/x", f"Bearer {other}"), 401, "TokenSignatureInvalid")


async def test_unknown_kid_refetches_at_most_every_interval(certs, keys, setup):
    idp, server = setup
    assert (await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k1'])}")).status_code == 200
    idp.keys = [jwk(keys["k1"], "k1"), jwk(keys["k2"], "k2")]  # the provider rotates
    for _ in range(3):  # unknown kids within the refresh interval: no refetch
        response = await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k2'], kid='k2')}")
        _refused(response, 401, "TokenSignatureInvalid")
    assert idp.fetches["/keys"] == 1


async def test_unknown_kid_refetches_after_rotation(certs, keys, gateway_with):
    idp, server = await gateway_with(openid_refresh_interval=0.001)
    ok = await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k1'])}")
    assert ok.status_code == 200
    idp.keys = [jwk(keys["k1"], "k1"), jwk(keys["k2"], "k2")]
    rotated = await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k2'], kid='k2')}")
    assert rotated.status_code == 200, rotated.text
    assert idp.fetches["/keys"] == 2


async def test_keys_are_refetched_after_their_ttl(certs, keys, gateway_with):
    idp, server = await gateway_with(openid_config_ttl=0.001, openid_refresh_interval=0.001)
    for _ in range(2):
        ok = await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k1'])}")
        assert ok.status_code == 200
    assert idp.fetches["/keys"] == 2


async def test_cached_documents_are_bounded(certs, keys, gateway_with):
    idp, server = await gateway_with(openid_documents=1)
    for path in ("/oidc/x", "/second/x", "/oidc/x"):
        ok = await _get(certs, server, path, f"Bearer {token(keys['k1'])}")
        assert ok.status_code == 200
    assert idp.fetches["/.well-known/openid-configuration"] == 2  # dropped, then fetched again


async def test_key_set_over_the_size_limit_is_not_read(certs, keys, gateway_with):
    _, server = await gateway_with(max_openid_bytes=200)
    response = await _get(certs, server, "/oidc/x", f"Bearer {token(keys['k1'])}")
    body = _refused(response, 401, "TokenSignatureInvalid")
    assert body["message"] == "JWT signature is invalid."  # the provider's failure stays inside
    assert "larger than the 200 bytes" in response.headers["x-message"]


async def test_unresponsive_provider_times_out(certs, keys, gateway_with):
    _, server = await gateway_with(openid_timeout=1.0)
    response = await _get(certs, server, "/slowidp/x", f"Bearer {token(keys['k1'])}")
    _refused(response, 401, "TokenSignatureInvalid")
    assert "did not complete within 1 s" in response.headers["x-message"]


async def test_symmetric_key_scheme_and_custom_failure(certs, setup):
    _, server = setup
    signed = token(SECRET, kid=None, alg="HS256")
    assert (await _get(certs, server, "/hs/x", f"Bearer {signed}")).text == "alice|reader"
    late = token(SECRET, kid=None, alg="HS256", exp=int(time.time()) - 60)
    assert (await _get(certs, server, "/hs/x", f"Bearer {late}")).status_code == 200  # skew
    later = token(SECRET, kid=None, alg="HS256", exp=int(time.time()) - 600)
    _refused(await _get(certs, server, "/hs/x", f"Bearer {later}"), 403, "TokenExpired")
    response = await _get(certs, server, "/hs/x", f"Basic {signed}")  # another scheme
    _refused(response, 403, "TokenNotPresent")
    response = await _get(certs, server, "/hs/x", signed)  # no scheme
    body = _refused(response, 403, "TokenNotPresent")
    assert body["message"] == "Go away."
    assert "www-authenticate" not in response.headers  # only 401 challenges


async def test_rsa_key_given_as_modulus_and_exponent_from_query(certs, keys, setup):
    _, server = setup
    async with client(certs, server) as http:
        ok = await http.get("/ne/x", params={"token": token(keys["k1"])})
        bad = await http.get("/ne/x", params={"token": token(keys["k2"], kid=None)})
        ec_key = ec.generate_private_key(ec.SECP256R1())
        other = await http.get("/ne/x", params={"token": token(ec_key, kid="k1", alg="ES256")})
    assert ok.text == "alice|reader"
    _refused(bad, 401, "TokenSignatureInvalid")
    _refused(other, 401, "TokenSignatureInvalid")


async def test_azure_ad_token_checks_tenant_issuer_and_client_application(certs, keys, setup):
    idp, server = setup
    idp.issuer = AAD_ISSUER
    good = token(keys["k1"], iss=AAD_ISSUER, azp="app-1")
    assert (await _get(certs, server, "/aad/x", f"Bearer {good}")).text == "alice|reader"
    assert idp.fetches[f"/{TENANT}/v2.0/.well-known/openid-configuration"] == 1
    other_app = token(keys["k1"], iss=AAD_ISSUER, azp="app-2")
    response = await _get(certs, server, "/aad/x", f"Bearer {other_app}")
    _refused(response, 401, "TokenClaimValueNotAllowed", "validate-azure-ad-token")
    other_tenant = token(keys["k1"], iss=ISSUER, azp="app-1")
    response = await _get(certs, server, "/aad/x", f"Bearer {other_tenant}")
    _refused(response, 401, "TokenIssuerNotAllowed", "validate-azure-ad-token")


@pytest.mark.parametrize(
    ("alg", "enc", "key"),
    [
        ("RSA-OAEP-256", "A256GCM", "sealing"),
        ("RSA-OAEP", "A128CBC-HS256", "sealing"),
        ("dir", "A256GCM", SEALING),
        ("dir", "A128CBC-HS256", SEALING),
        ("A256KW", "A256CBC-HS512", SEALING),
        ("A256KW", "A128GCM", SEALING),
    ],
)
async def test_encrypted_token_is_decrypted_then_its_signature_checked(
    certs, keys, setup, alg, enc, key
):
    _, server = setup
    sealing = keys[key] if isinstance(key, str) else key
    kid = {} if isinstance(key, str) else {"kid": "sym"}
    sealed = encrypt(token(keys["k1"]), sealing, alg, enc, cty="JWT", **kid)
    response = await _get(certs, server, "/jwe/x", f"Bearer {sealed}")
    assert response.status_code == 200, response.headers.get("x-message")
    assert response.text == "alice|reader"
    forged = encrypt(token(keys["rogue"], kid="k1"), sealing, alg, enc, cty="JWT", **kid)
    response = await _get(certs, server, "/jwe/x", f"Bearer {forged}")
    _refused(response, 401, "TokenSignatureInvalid")  # decrypting proves nothing about who signed


async def test_undecryptable_tokens_are_refused(certs, keys, setup):
    _, server = setup
    inner = token(keys["k1"])
    wrong_key = encrypt(inner, keys["rogue"], "RSA-OAEP-256", "A256GCM")
    tampered = encrypt(inner, keys["sealing"], "RSA-OAEP", "A256CBC-HS512").split(".")
    tampered[3] = ("B" if tampered[3][0] == "A" else "A") + tampered[3][1:]
    ec_key = ec.generate_private_key(ec.SECP256R1())
    unsupported = encrypt(inner, ec_key, "ECDH-ES", "A256GCM")
    claims_only = encrypt(json.dumps({"sub": "mallory"}), keys["sealing"], "RSA-OAEP", "A128GCM")
    huge = encrypt(b"a" * (MAX_TOKEN + 1), SEALING, "dir", "A256GCM", zip="DEF")
    cases = [
        (wrong_key, "TokenInvalid", "could not be decrypted"),
        (".".join(tampered), "TokenInvalid", "could not be decrypted"),
        (unsupported, "TokenInvalid", "'ECDH-ES' is not supported"),
        (huge, "TokenInvalid", f"longer than the {MAX_TOKEN} bytes"),
        (claims_only, "TokenSignatureInvalid", "JWT is not signed."),
    ]
    for sealed, reason, message in cases:
        response = await _get(certs, server, "/jwe/x", f"Bearer {sealed}")
        body = _refused(response, 401, reason)
        assert message in response.headers["x-message"]
        assert body["message"] == response.headers["x-message"]
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    plain = await _get(
        certs, server, "/hs/x", f"Bearer {encrypt(inner, SEALING, 'dir', 'A256GCM')}"
    )
    body = _refused(plain, 403, "TokenInvalid")  # no decryption-keys: an encrypted token is refused
    assert "no 'decryption-keys'" in plain.headers["x-message"]


async def test_encrypted_claims_pass_where_unsigned_tokens_may(certs, keys, setup):
    _, server = setup
    claims = {"sub": "alice", "roles": "reader", "exp": int(time.time()) + 60}
    sealed = encrypt(json.dumps(claims), SEALING, "A256KW", "A256GCM")
    assert (await _get(certs, server, "/jwe-unsigned/x", sealed)).text == "alice|reader"
    expired = encrypt(json.dumps({**claims, "exp": 1}), SEALING, "dir", "A128CBC-HS256")
    _refused(await _get(certs, server, "/jwe-unsigned/x", expired), 401, "TokenExpired")


def test_a_decryption_certificate_needs_its_private_key_when_saved():
    text = (
        "<policies><inbound><validate-azure-ad-token tenant-id='t'><decryption-keys>"
        "<key certificate-id='{id}'/></decryption-keys></validate-azure-ad-token></inbound>"
        "</policies>"
    )
    catalog = MemoryCatalog({"certificates/public", "certificates/full"}, keyless={"public"})
    assert parse_document(text.format(id="full"), "api", catalog).sections["inbound"]
    with pytest.raises(PolicyValidationError) as caught:
        parse_document(text.format(id="public"), "api", catalog)
    assert "Attribute 'certificate-id': certificate 'public' has no private key" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        ("", "'issuer-signing-keys' or 'openid-config'"),
        ("<issuer-signing-keys><key>not base64!</key></issuer-signing-keys>", "not base64"),
        ("<issuer-signing-keys><key n='AQAB'/></issuer-signing-keys>", "not a base64url RSA"),
        ("<openid-config url='ftp://x/'/>", "not an absolute http(s) URL"),
        ("<decryption-keys><key>dGVzdA==</key></decryption-keys>", "32, 48 or 64 bytes long"),
        ("<decryption-keys><key n='AQAB' e='AQAB'/></decryption-keys>", "cannot be an RSA public"),
        ("<decryption-keys/>", "needs at least one 'key'"),
        (
            "<openid-config url='https://x/'/><required-claims><claim name='a' match='some'/>"
            "</required-claims>",
            "'all' or 'any'",
        ),
        (
            "<openid-config url='https://x/'/><audiences><audience>@(\"x\")</audience></audiences>",
            "Expressions are not allowed",
        ),
    ],
)
def test_refused_when_saved(inner, message):
    text = (
        f"<policies><inbound><validate-jwt header-name='Authorization'>{inner}</validate-jwt>"
        "</inbound></policies>"
    )
    with pytest.raises(PolicyValidationError) as caught:
        parse_document(text, "api", PlaceholderCatalog())
    assert message in str(caught.value)


def test_token_source_and_section_refused_when_saved():
    both = (
        "<validate-jwt header-name='a' query-parameter-name='b'><openid-config url='https://x/'/>"
    )
    for text, message in (
        (f"<inbound>{both}</validate-jwt></inbound>", "Only one of"),
        (
            "<inbound><validate-jwt><openid-config url='https://x/'/></validate-jwt></inbound>",
            "One of",
        ),
        (
            "<outbound><validate-jwt header-name='a'><openid-config url='https://x/'/>"
            "</validate-jwt></outbound>",
            "not allowed in the 'outbound' section",
        ),
        ("<inbound><validate-azure-ad-token tenant-id='a/b'/></inbound>", "tenant-id"),
    ):
        with pytest.raises(PolicyValidationError) as caught:
            parse_document(f"<policies>{text}</policies>", "api", PlaceholderCatalog())
        assert message in str(caught.value)

"""`validate-jwt` and `validate-azure-ad-token`: only requests with a valid JSON web token pass.

The token comes from `header-name` (a leading scheme such as `Bearer` is set aside;
`require-scheme` makes it mandatory), `query-parameter-name` or `token-value`. Its signature is
checked with the `issuer-signing-keys` (base64 symmetric text, `certificate-id`, or RSA `n`/`e`)
and the keys of each `openid-config` document (`certgate.policy.openid`: cached, bounded). A key
is only tried for the algorithms of its kind (HMAC for symmetric keys, RS/PS for RSA, ES for EC,
EdDSA for Edwards keys), so a public key can never be used as an HMAC secret. Then the times
(`exp`, `nbf`, with `clock-skew`), `audiences`, `issuers` (the openid documents' issuer when none
are listed) and `required-claims`.

An encrypted token (JWE) is first decrypted with the `decryption-keys` (base64 symmetric text, or
`certificate-id`: a stored certificate's RSA private key; `certgate.policy.jwe`); the signed token
inside is then checked as above. Encrypted claims that are not a signed token count as unsigned.

A failure ends the request with `failed-validation-httpcode` (401) and APIM's JSON error body,
whose message is `failed-validation-error-message` or the reason's default; a 401 carries
`WWW-Authenticate: Bearer` (RFC 6750: `error="invalid_token"` unless the token was absent).
`context.LastError` gets Source `validate-jwt` and Reason `TokenNotPresent`, `TokenInvalid` (also
for a token that cannot be decrypted),
`TokenSignatureInvalid`, `TokenExpired`, `TokenNotYetValid`, `TokenAudienceNotAllowed`,
`TokenIssuerNotAllowed`, `TokenClaimNotFound` or `TokenClaimValueNotAllowed`. On success
`output-token-variable-name` receives the token as a `Jwt` object.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from certgate.expressions.dotnet.auth import MAX_TOKEN, Jwt
from certgate.policy import jwe
from certgate.policy.context import Context
from certgate.policy.elements.control import string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.openid import OpenIdError, signing_keys
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.sidecall import url_problem
from certgate.policy.values import Const, Value

_ALGORITHMS = {
    "HS256": "HS",
    "HS384": "HS",
    "HS512": "HS",
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
}
_MESSAGES = {
    "TokenNotPresent": "JWT not present.",
    "TokenInvalid": "JWT is malformed.",
    "TokenSignatureInvalid": "JWT signature is invalid.",
    "TokenExpired": "JWT has expired.",
    "TokenNotYetValid": "JWT is not yet valid.",
    "TokenAudienceNotAllowed": "JWT audience is not allowed.",
    "TokenIssuerNotAllowed": "JWT issuer is not allowed.",
    "TokenClaimNotFound": "JWT is missing required claims.",
    "TokenClaimValueNotAllowed": "JWT claim value is not allowed.",
}
_JWS = jwt.PyJWS()
_UNSIGNED_HEADER = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()


def _kind(key: Any) -> str:
    """The family of algorithms a key may verify."""
    if isinstance(key, bytes):
        return "HS"
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP"
    return ""


@dataclass(frozen=True, slots=True)
class _Key:
    """A signing or decryption key: `value` (bytes or a public key), or a stored certificate's id
    (its public key, or its private key when `private`)."""

    kid: str | None
    value: object = None
    certificate_id: str | None = None
    private: bool = False

    def resolve(self, context: Context) -> object:
        if self.certificate_id is None:
            return self.value
        snapshot = context.snapshot
        found = snapshot.certificates_by_id.named(self.certificate_id) if snapshot else None
        if found is None:
            return None
        return found.private_key if self.private else found.certificate.public_key()


@dataclass(frozen=True, slots=True)
class _Claim:
    name: str
    match_all: bool
    separator: str | None
    values: tuple[str, ...]


class _Failure(Exception):
    """`detail` goes to `context.LastError.Message`; `public` into the response body."""

    def __init__(self, reason: str, detail: str | None = None, public: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or _MESSAGES[reason]
        self.public = public or self.detail


# header-name, query-parameter-name, token-value, failed-validation-httpcode and -error-message,
# output-token-variable-name: the first fields of `_TokenPolicy`
Source = tuple[str | None, str | None, Value | None, int, str | None, str | None]


@dataclass(slots=True)
class _TokenPolicy(Policy):
    """What both elements share: where the token is, how failures answer, what is checked."""

    header: str | None
    query: str | None
    token_value: Value | None
    status: int
    error_message: str | None
    output: str | None
    scheme: str | None = None
    require_expiration: bool = True
    require_signed: bool = True
    skew: int = 0
    keys: tuple[_Key, ...] = ()
    decryption: tuple[_Key, ...] = ()
    configs: tuple[str, ...] = ()
    audiences: frozenset[str] = frozenset()
    issuers: frozenset[str] = frozenset()
    claims: tuple[_Claim, ...] = ()
    attributes = frozenset(
        {
            "header-name",
            "query-parameter-name",
            "token-value",
            "failed-validation-httpcode",
            "failed-validation-error-message",
            "output-token-variable-name",
        }
    )
    expressions = frozenset({"token-value"})
    sections = frozenset({"inbound"})
    default_header: ClassVar[str | None] = None

    @classmethod
    def parse_source(cls, node: Node, loader: Loader) -> Source:
        """Where the token is and how a failure answers."""
        header = loader.literal(node, "header-name")
        query = loader.literal(node, "query-parameter-name")
        token_value = loader.attr(node, "token-value")
        given = [v for v in (header, query, token_value) if v is not None]
        if len(given) > 1:
            raise node.error(
                "Only one of 'header-name', 'query-parameter-name' or 'token-value' may be "
                "specified."
            )
        if not given:
            if cls.default_header is None:
                raise node.error(
                    "One of 'header-name', 'query-parameter-name' or 'token-value' must be "
                    "specified."
                )
            header = cls.default_header
        status = loader.const_int(node, "failed-validation-httpcode", 401)
        if not 400 <= status <= 599:
            raise node.error("Attribute 'failed-validation-httpcode' must be from 400 to 599.")
        error_message = loader.literal(node, "failed-validation-error-message")
        output = loader.literal(node, "output-token-variable-name")
        return header, query, token_value, status, error_message, output

    # -- configuration children -------------------------------------------------------------
    @staticmethod
    def texts(child: Node, loader: Loader, tag: str) -> frozenset[str]:
        """The text of each `tag` element inside `child` (audiences/audience...)."""
        if child.attrib:
            raise child.error(f"Element '{child.tag}' takes no attributes.")
        found = set()
        for item in loader.children(child, {tag}):
            loader.no_children(item)
            if item.attrib:
                raise item.error(f"Element '{tag}' takes no attributes.")
            text = loader.text(item)
            if not isinstance(text, Const) or not text.value:
                raise item.error(f"Element '{tag}' needs a constant, non-empty value.")
            found.add(text.value)
        return frozenset(found)

    @staticmethod
    def required_claims(child: Node, loader: Loader) -> tuple[_Claim, ...]:
        claims = []
        for item in loader.children(child, {"claim"}):
            name = loader.literal(item, "name", required=True)
            match = loader.literal(item, "match", "all")
            if match not in ("all", "any"):
                raise item.error(f"Attribute 'match' must be 'all' or 'any', not '{match}'.")
            extra = set(item.attrib) - {"name", "match", "separator"}
            if extra:
                raise item.error(f"Attribute '{extra.pop()}' is not allowed in 'claim'.")
            values = []
            for value in loader.children(item, {"value"}):
                loader.no_children(value)
                text = loader.text(value)
                if not isinstance(text, Const):
                    raise value.error("Expressions are not allowed in claim values.")
                values.append(text.value)
            separator = loader.literal(item, "separator") or None
            claims.append(_Claim(name, match == "all", separator, tuple(values)))
        return tuple(claims)

    # -- per request ----------------------------------------------------------------------------
    async def execute(self, context: Context) -> bool | int | None:
        try:
            token = self.token(context)
            header, payload, issuers = await self.verified(context, token)
            self.check(payload, issuers)
            self.check_more(payload)
        except _Failure as failure:
            raise self.failure(failure) from None
        if self.output is not None:
            context.Variables.set(self.output, Jwt(header, payload))
        return None

    def token(self, context: Context) -> str:
        if self.token_value is not None:
            raw = string_of(self.token_value, context).strip()
        elif self.query is not None:
            raw = ",".join(context.Request.Url.params().get(self.query, ())).strip()
        else:
            raw = (context.Request.Headers.GetValueOrDefault(self.header or "") or "").strip()
            scheme, _, rest = raw.partition(" ")
            rest = rest.strip()
            if self.scheme is not None and (not rest or scheme.lower() != self.scheme.lower()):
                raise _Failure("TokenNotPresent")
            if rest:
                raw = rest
        if not raw:
            raise _Failure("TokenNotPresent")
        if len(raw) > MAX_TOKEN:
            raise _Failure("TokenInvalid", "JWT is longer than the gateway accepts.")
        return raw

    async def verified(
        self, context: Context, token: str
    ) -> tuple[dict[str, Any], dict[str, Any], frozenset[str]]:
        """The token's header and payload once its signature holds, and the issuers of the
        openid documents consulted."""
        if jwe.is_encrypted(token):
            token = self.decrypted(context, token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _Failure("TokenInvalid") from None
        alg = header.get("alg")
        if alg == "none" or not isinstance(alg, str):
            if self.require_signed:
                raise _Failure("TokenSignatureInvalid", "JWT is not signed.")
            payload = _payload(token, None, None)
            return header, payload, frozenset()
        kind = _ALGORITHMS.get(alg)
        if kind is None:
            raise _Failure("TokenSignatureInvalid", f"JWT algorithm '{alg}' is not supported.")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        candidates = [key.resolve(context) for key in self.keys if _matches(key.kid, kid)]
        issuers = set()
        problems = []
        for url in self.config_urls(context):
            try:
                entry = await signing_keys(context, url, kid)
            except OpenIdError as exc:
                problems.append(str(exc))
                continue
            if entry.issuer:
                issuers.add(entry.issuer)
            candidates.extend(value for key_id, value in entry.keys if _matches(key_id, kid))
        usable = [key for key in candidates if key is not None and _kind(key) == kind]
        if not usable:
            detail = f"No signing key matches the token (kid '{kid}', algorithm {alg})."
            if problems:  # which provider failed and how stays out of the response
                detail += " Signing keys could not be fetched: " + "; ".join(problems)
                raise _Failure("TokenSignatureInvalid", detail, _MESSAGES["TokenSignatureInvalid"])
            raise _Failure("TokenSignatureInvalid", detail)
        for key in usable:
            try:
                return header, _payload(token, key, alg), frozenset(issuers)
            except jwt.InvalidSignatureError:
                continue
        raise _Failure("TokenSignatureInvalid")

    def decrypted(self, context: Context, token: str) -> str:
        """The signed token inside an encrypted one; encrypted claims alone become an unsigned
        token, which only passes where unsigned tokens may."""
        if not self.decryption:
            raise _Failure("TokenInvalid", "JWT is encrypted and no 'decryption-keys' are given.")
        try:
            encrypted = jwe.parse(token)
            keys = [
                key.resolve(context) for key in self.decryption if _matches(key.kid, encrypted.kid)
            ]
            plaintext = jwe.decrypt(
                encrypted, [key for key in keys if isinstance(key, bytes | rsa.RSAPrivateKey)]
            )
        except jwe.JweError as exc:
            raise _Failure("TokenInvalid", str(exc)) from None
        try:
            inner = plaintext.decode("ascii")
        except UnicodeDecodeError:
            inner = ""
        if inner.count(".") == 2:
            return inner
        claims = base64.urlsafe_b64encode(plaintext).rstrip(b"=").decode()
        return f"{_UNSIGNED_HEADER}.{claims}."

    def config_urls(self, context: Context) -> tuple[str, ...]:
        return self.configs

    def check(self, payload: dict, issuers: frozenset[str]) -> None:
        now = time.time()
        exp, nbf = payload.get("exp"), payload.get("nbf")
        for name, value in (("exp", exp), ("nbf", nbf)):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not number:
                raise _Failure("TokenInvalid", f"JWT claim '{name}' is not a number.")
        if exp is None and self.require_expiration:
            raise _Failure("TokenInvalid", "JWT has no expiration time.")
        if exp is not None and exp + self.skew <= now:
            raise _Failure("TokenExpired")
        if nbf is not None and nbf - self.skew > now:
            raise _Failure("TokenNotYetValid")
        if self.audiences and not self.audiences.intersection(_strings(payload.get("aud"))):
            raise _Failure("TokenAudienceNotAllowed")
        allowed = self.issuers or issuers
        if allowed and payload.get("iss") not in allowed:
            raise _Failure("TokenIssuerNotAllowed")
        missing = [claim.name for claim in self.claims if claim.name not in payload]
        if missing:
            raise _Failure(
                "TokenClaimNotFound", f"JWT is missing the following claims: {', '.join(missing)}."
            )
        for claim in self.claims:
            present = set(_strings(payload[claim.name], claim.separator))
            wanted = set(claim.values)
            ok = wanted <= present if claim.match_all else bool(wanted & present)
            if wanted and not ok:
                raise _Failure(
                    "TokenClaimValueNotAllowed", f"JWT claim '{claim.name}' value is not allowed."
                )

    def check_more(self, payload: dict) -> None:
        """Checks a subclass adds (validate-azure-ad-token's application ids)."""

    def failure(self, failure: _Failure) -> PolicyRuntimeError:
        headers: tuple[tuple[str, str], ...] = ()
        if self.status == 401:
            challenge = "Bearer"
            if failure.reason != "TokenNotPresent":
                challenge += ' error="invalid_token"'
            headers = (("WWW-Authenticate", challenge),)
        return PolicyRuntimeError(
            failure.reason,
            failure.detail,
            self.status,
            headers,
            public_message=self.error_message or failure.public,
        )


@register("validate-jwt")
@dataclass(slots=True)
class ValidateJwt(_TokenPolicy):
    """Any identity provider: keys given inline or by openid-config URLs."""

    attributes = _TokenPolicy.attributes | {
        "require-expiration-time",
        "require-scheme",
        "require-signed-tokens",
        "clock-skew",
    }

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        source = cls.parse_source(node, loader)
        scheme = loader.literal(node, "require-scheme") or None
        require_expiration = loader.const_bool(node, "require-expiration-time", True)
        require_signed = loader.const_bool(node, "require-signed-tokens", True)
        skew = loader.const_int(node, "clock-skew", 0)
        if skew < 0:
            raise node.error("Attribute 'clock-skew' must not be negative.")
        keys: list[_Key] = []
        decryption: tuple[_Key, ...] = ()
        configs: list[str] = []
        audiences: frozenset[str] = frozenset()
        issuers: frozenset[str] = frozenset()
        claims: tuple[_Claim, ...] = ()
        allowed = {
            "openid-config",
            "issuer-signing-keys",
            "decryption-keys",
            "audiences",
            "issuers",
            "required-claims",
        }
        for child in loader.children(node, allowed):
            if child.tag == "openid-config":
                configs.append(_config_url(child, loader))
            elif child.tag == "issuer-signing-keys":
                keys.extend(_key(item, loader) for item in loader.children(child, {"key"}))
            elif child.tag == "decryption-keys":
                decryption = _decryption_keys(child, loader)
            elif child.tag == "audiences":
                audiences = cls.texts(child, loader, "audience")
            elif child.tag == "issuers":
                issuers = cls.texts(child, loader, "issuer")
            else:
                claims = cls.required_claims(child, loader)
        if require_signed and not keys and not configs:
            raise node.error(
                "Signed tokens need 'issuer-signing-keys' or 'openid-config' to check them with."
            )
        return cls(
            *source,
            scheme=scheme,
            require_expiration=require_expiration,
            require_signed=require_signed,
            skew=skew,
            keys=tuple(keys),
            decryption=decryption,
            configs=tuple(configs),
            audiences=audiences,
            issuers=issuers,
            claims=claims,
        )


@register("validate-azure-ad-token")
@dataclass(slots=True)
class ValidateAzureAdToken(_TokenPolicy):
    """Microsoft Entra ID: the tenant's openid configuration, issuer and application ids."""

    tenant: str = ""
    client_apps: frozenset[str] = frozenset()
    attributes = _TokenPolicy.attributes | {"tenant-id"}
    default_header = "Authorization"

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        source = cls.parse_source(node, loader)
        tenant = loader.literal(node, "tenant-id", required=True).strip()
        if not tenant or url_problem(f"https://tenant/{tenant}") or "/" in tenant:
            raise node.error(f"Attribute 'tenant-id' is not a tenant id or domain: {tenant!r}")
        client_apps: frozenset[str] = frozenset()
        backend_apps: frozenset[str] = frozenset()
        audiences: frozenset[str] = frozenset()
        claims: tuple[_Claim, ...] = ()
        decryption: tuple[_Key, ...] = ()
        allowed = {
            "client-application-ids",
            "backend-application-ids",
            "audiences",
            "required-claims",
            "decryption-keys",
        }
        for child in loader.children(node, allowed):
            if child.tag == "client-application-ids":
                client_apps = cls.texts(child, loader, "application-id")
            elif child.tag == "backend-application-ids":
                backend_apps = cls.texts(child, loader, "application-id")
            elif child.tag == "audiences":
                audiences = cls.texts(child, loader, "audience")
            elif child.tag == "decryption-keys":
                decryption = _decryption_keys(child, loader)
            else:
                claims = cls.required_claims(child, loader)
        if backend_apps:
            audiences = audiences | backend_apps | {f"api://{app}" for app in backend_apps}
        return cls(
            *source,
            audiences=audiences,
            claims=claims,
            decryption=decryption,
            tenant=tenant,
            client_apps=client_apps,
        )

    def config_urls(self, context: Context) -> tuple[str, ...]:
        authority = context.forwarder.limits.azure_ad_authority.rstrip("/")
        return (f"{authority}/{self.tenant}/v2.0/.well-known/openid-configuration",)

    def check_more(self, payload: dict) -> None:
        if self.client_apps:
            client = payload.get("azp") or payload.get("appid")
            if client not in self.client_apps:
                raise _Failure(
                    "TokenClaimValueNotAllowed", "The token's client application is not allowed."
                )


def _matches(key_id: str | None, kid: str | None) -> bool:
    """A key with an id only verifies tokens naming it; one without an id, any token."""
    return key_id is None or kid is None or key_id == kid


def _payload(token: str, key: Any, alg: str | None) -> dict:
    """The payload as a JSON object; the signature is checked unless `alg` is None."""
    try:
        if alg is None:
            data = _JWS.decode_complete(token, options={"verify_signature": False})
        else:
            data = _JWS.decode_complete(token, key, algorithms=[alg])
        payload = json.loads(data["payload"])
    except jwt.InvalidSignatureError:
        raise
    except (jwt.PyJWTError, ValueError, RecursionError):
        raise _Failure("TokenInvalid") from None
    if not isinstance(payload, dict):
        raise _Failure("TokenInvalid")
    return payload


def _strings(value: Any, separator: str | None = None) -> list[str]:
    """A claim's values as strings (an array's items; a string split by `separator`)."""
    items = value if isinstance(value, list) else [value]
    found = []
    for item in items:
        if item is None:
            continue
        text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
        found.extend(text.split(separator) if separator else [text])
    return found


def _config_url(child: Node, loader: Loader) -> str:
    loader.no_children(child)
    url = loader.literal(child, "url", required=True)
    extra = set(child.attrib) - {"url", "validate-connectivity"}
    if extra:
        raise child.error(f"Attribute '{extra.pop()}' is not allowed in 'openid-config'.")
    problem = url_problem(url)
    if problem is not None:
        raise child.error(f"Attribute 'url': {problem}")
    return url


def _key(item: Node, loader: Loader) -> _Key:
    """`<key>base64</key>`, `<key certificate-id="..."/>` or `<key n="..." e="..."/>`."""
    extra = set(item.attrib) - {"id", "certificate-id", "n", "e"}
    if extra:
        raise item.error(f"Attribute '{extra.pop()}' is not allowed in 'key'.")
    loader.no_children(item)
    kid = item.attrib.get("id")
    certificate_id = item.attrib.get("certificate-id")
    n, e = item.attrib.get("n"), item.attrib.get("e")
    text = item.text.strip()
    if item.text_is_expr or any(name in item.expr_attrs for name in item.attrib):
        raise item.error("Expressions are not allowed in 'key'.")
    given = sum(bool(v) for v in (certificate_id, text, n or e))
    if given != 1:
        raise item.error("A key is exactly one of: base64 text, 'certificate-id', or 'n' and 'e'.")
    if certificate_id:
        stored = loader.reference(
            item,
            f"certificates/{certificate_id}",
            f"Certificate with id '{certificate_id}' could not be found.",
        )
        return _Key(kid, certificate_id=stored)
    if text:
        try:
            secret = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise item.error("The key is not base64 text.") from None
        if not secret:
            raise item.error("The key is empty.")
        return _Key(kid, secret)
    try:
        numbers = rsa.RSAPublicNumbers(_base64url_int(e or ""), _base64url_int(n or ""))
        return _Key(kid, numbers.public_key())
    except (binascii.Error, ValueError):
        raise item.error("Attributes 'n' and 'e' are not a base64url RSA public key.") from None


def _decryption_keys(child: Node, loader: Loader) -> tuple[_Key, ...]:
    """`<key>base64</key>` (a symmetric key) or `<key certificate-id="..."/>` (a stored
    certificate with its private key), each with an optional `id` matched against `kid`."""
    if child.attrib:
        raise child.error("Element 'decryption-keys' takes no attributes.")
    keys = []
    for item in loader.children(child, {"key"}):
        if {"n", "e"} & set(item.attrib):
            raise item.error(
                "A decryption key cannot be an RSA public key ('n' and 'e'): use "
                "'certificate-id' with a certificate that has its private key."
            )
        key = _key(item, loader)
        if key.certificate_id is not None:
            if not loader.catalog.has_private_key(key.certificate_id):
                raise item.error(
                    f"Attribute 'certificate-id': certificate '{key.certificate_id}' has no "
                    "private key to decrypt tokens with."
                )
            key = _Key(key.kid, certificate_id=key.certificate_id, private=True)
        elif not isinstance(key.value, bytes) or len(key.value) not in jwe.SYMMETRIC_LENGTHS:
            *most, last = sorted(jwe.SYMMETRIC_LENGTHS)
            lengths = f"{', '.join(map(str, most))} or {last}"
            raise item.error(f"A symmetric decryption key must be {lengths} bytes long.")
        keys.append(key)
    if not keys:
        raise child.error("Element 'decryption-keys' needs at least one 'key'.")
    return tuple(keys)


def _base64url_int(text: str) -> int:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if not data:
        raise ValueError("empty")
    return int.from_bytes(data, "big")

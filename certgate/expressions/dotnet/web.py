"""Encoding, Uri, WebUtility/HttpUtility, Guid, hashing/HMAC, StringBuilder, exceptions, and the
names of engine-provided types (`IResponse`, `Jwt`, `X509Certificate2`...) that casts may use.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import uuid
from urllib.parse import quote, unquote, unquote_plus, urljoin, urlsplit

from ..budget import check_length, spend
from ..errors import cs_error
from ..model import CsObject
from ..runtime import cs_str
from . import CsType, Fn, constant, members, register
from .numbers import bytes_of


class Encoding(CsObject):
    """Encoding.UTF8 / ASCII / Unicode: GetBytes and GetString."""

    __slots__ = ("codec",)
    __cs_type__ = "Encoding"
    __cs_members__ = frozenset({"GetBytes", "GetString", "GetByteCount", "WebName", "ToString"})

    def __init__(self, codec: str) -> None:
        self.codec = codec

    @property
    def WebName(self) -> str:
        return self.codec

    def GetBytes(self, s: object, *range_: int) -> bytes:
        if s is None:
            raise cs_error("ArgumentNullException", "Value cannot be null. (Parameter 's')")
        text = "".join(s) if isinstance(s, list) else cs_str(s)
        if range_:
            text = text[range_[0] : range_[0] + range_[1]]
        return text.encode(
            self.codec, errors="replace" if self.codec == "ascii" else "surrogatepass"
        )

    def GetByteCount(self, s: object) -> int:
        return len(self.GetBytes(s))

    def GetString(self, b: object, *range_: int) -> str:
        data = bytes_of(b)
        if range_:
            data = data[range_[0] : range_[0] + range_[1]]
        if self.codec == "ascii":
            return "".join(chr(x) if x < 128 else "?" for x in data)
        return data.decode(self.codec, errors="replace")


_ENCODINGS = {
    "UTF8": Encoding("utf-8"),
    "ASCII": Encoding("ascii"),
    "Unicode": Encoding("utf-16-le"),
    "BigEndianUnicode": Encoding("utf-16-be"),
    "UTF32": Encoding("utf-32-le"),
    "Default": Encoding("utf-8"),
    "Latin1": Encoding("latin-1"),
}
register(
    CsType(
        "Encoding",
        lambda v: isinstance(v, Encoding),
        static_props={k: constant(v) for k, v in _ENCODINGS.items()},
        static_methods={
            "GetEncoding": lambda name: _ENCODINGS.get(
                str(name).upper().replace("-", ""), Encoding(str(name))
            )
        },
    )
)


def escape_data(s: object) -> str:
    if s is None:
        raise cs_error(
            "ArgumentNullException", "Value cannot be null. (Parameter 'stringToEscape')"
        )
    return quote(cs_str(s), safe="-_.~")


def url_encode(s: object, lower: bool = False) -> str | None:
    if s is None:
        return None
    out = quote(cs_str(s), safe="-_.!*()", encoding="utf-8").replace("%20", "+")
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), out) if lower else out


def html_encode(s: object) -> str | None:
    if s is None:
        return None
    out = html.escape(cs_str(s), quote=True).replace("&#x27;", "&#39;")
    return re.sub(r"[\u00a0-\u00ff]", lambda m: f"&#{ord(m.group(0))};", out)


class Uri(CsObject):
    """System.Uri for absolute URIs."""

    __slots__ = ("_p", "_s")
    __cs_type__ = "Uri"
    __cs_members__ = frozenset(
        [
            "AbsoluteUri",
            "AbsolutePath",
            "Host",
            "Port",
            "Scheme",
            "Query",
            "PathAndQuery",
            "Fragment",
            "Authority",
            "Segments",
            "IsAbsoluteUri",
            "OriginalString",
            "UserInfo",
            "IsDefaultPort",
            "LocalPath",
            "ToString",
            "Equals",
        ]
    )
    _PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}

    def __init__(self, s: object, relative: object = None) -> None:
        """`new Uri(string[, UriKind])`, or `new Uri(Uri baseUri, string relativeUri)`."""
        if isinstance(s, Uri) and isinstance(relative, str | Uri):
            text = urljoin(s.AbsoluteUri, cs_str(relative))
        else:
            text = cs_str(s)
        p = urlsplit(text.strip())
        if not p.scheme or (not p.netloc and p.scheme in self._PORTS):
            raise cs_error(
                "UriFormatException", "Invalid URI: The format of the URI could not be determined."
            )
        self._s, self._p = text, p

    @property
    def Scheme(self) -> str:
        return self._p.scheme.lower()

    @property
    def Host(self) -> str:
        return (self._p.hostname or "").lower()

    @property
    def Port(self) -> int:
        return self._p.port or self._PORTS.get(self.Scheme, -1)

    @property
    def IsDefaultPort(self) -> bool:
        return self.Port == self._PORTS.get(self.Scheme, -1)

    @property
    def AbsolutePath(self) -> str:
        return quote(unquote(self._p.path or "/"), safe="/:@!$&'()*+,;=-._~%")

    @property
    def LocalPath(self) -> str:
        return unquote(self._p.path or "/")

    @property
    def Query(self) -> str:
        return "?" + self._p.query if self._p.query else ""

    @property
    def Fragment(self) -> str:
        return "#" + self._p.fragment if self._p.fragment else ""

    @property
    def PathAndQuery(self) -> str:
        return self.AbsolutePath + self.Query

    @property
    def Authority(self) -> str:
        return self.Host + ("" if self.IsDefaultPort else f":{self.Port}")

    @property
    def UserInfo(self) -> str:
        return self._p.username or ""

    @property
    def Segments(self) -> list[str]:
        parts = self.AbsolutePath.split("/")
        return ["/"] + [p + "/" for p in parts[1:-1]] + ([parts[-1]] if parts[-1] else [])

    @property
    def AbsoluteUri(self) -> str:
        return f"{self.Scheme}://{self.Authority}{self.PathAndQuery}{self.Fragment}"

    @property
    def IsAbsoluteUri(self) -> bool:
        return True

    @property
    def OriginalString(self) -> str:
        return self._s

    def ToString(self) -> str:
        return unquote(self.AbsoluteUri)

    def Equals(self, other: object) -> bool:
        return isinstance(other, Uri) and other.AbsoluteUri == self.AbsoluteUri

    def __cs_equals__(self, other: object) -> bool:
        return self.Equals(other)


def _try_create(s: object, *_: object) -> tuple[bool, Uri | None]:
    try:
        return True, Uri(s)
    except Exception:
        return False, None


register(
    CsType(
        "Uri",
        lambda v: isinstance(v, Uri),
        static_methods={
            "EscapeDataString": escape_data,
            "UnescapeDataString": lambda s: unquote(cs_str(s)),
            "EscapeUriString": lambda s: quote(cs_str(s), safe="/:?#[]@!$&'()*+,;=-._~%"),
            "IsWellFormedUriString": lambda s, *_: _try_create(s)[0],
            "TryCreate": _try_create,
        },
        new=Uri,
    )
)
_WEB: dict[str, Fn] = {
    "UrlEncode": url_encode,
    "UrlDecode": lambda s: None if s is None else unquote_plus(cs_str(s)),
    "HtmlEncode": html_encode,
    "HtmlDecode": lambda s: None if s is None else html.unescape(cs_str(s)),
}
register(CsType("WebUtility", lambda v: False, static_methods=_WEB))
register(
    CsType(
        "HttpUtility",
        lambda v: False,
        static_methods={
            **_WEB,
            "UrlEncode": lambda s: url_encode(s, lower=True),
            "UrlPathEncode": lambda s: quote(cs_str(s), safe="/:?#[]@!$&'()*+,;=-._~"),
        },
    )
)


class Guid(CsObject):
    """System.Guid."""

    __slots__ = ("u",)
    __cs_type__ = "Guid"
    __cs_members__ = frozenset({"ToString", "ToByteArray", "Equals", "GetHashCode"})

    def __init__(self, value: object = None) -> None:
        if isinstance(value, uuid.UUID):
            self.u = value
        elif isinstance(value, bytes | bytearray | list):
            b = bytes_of(value)
            if len(b) != 16:
                raise cs_error(
                    "ArgumentException", "Byte array for GUID must be exactly 16 bytes long."
                )
            self.u = uuid.UUID(bytes_le=b)
        elif value is None:
            self.u = uuid.UUID(int=0)
        else:
            try:
                self.u = uuid.UUID(cs_str(value).strip())
            except ValueError:
                raise cs_error("FormatException", "Unrecognized Guid format.") from None

    def ToString(self, fmt: object = None, *_: object) -> str:
        s = str(self.u)
        f = (cs_str(fmt) or "D") if fmt is not None else "D"
        return {"D": s, "N": s.replace("-", ""), "B": "{" + s + "}", "P": "(" + s + ")"}.get(
            f.upper(), s
        )

    def ToByteArray(self) -> bytearray:
        return bytearray(self.u.bytes_le)

    def Equals(self, other: object) -> bool:
        return isinstance(other, Guid) and other.u == self.u

    def __cs_equals__(self, other: object) -> bool:
        return self.Equals(other)

    def GetHashCode(self) -> int:
        return self.u.int & 0x7FFFFFFF


def _guid_parse(s: object, *_: object) -> Guid:
    return Guid(s if s is not None else "")


register(
    CsType(
        "Guid",
        lambda v: isinstance(v, Guid),
        static_props={"Empty": lambda: Guid()},
        static_methods={
            "NewGuid": lambda: Guid(uuid.uuid4()),
            "Parse": _guid_parse,
            "TryParse": lambda s, *_: _try(lambda: _guid_parse(s), Guid()),
        },
        new=Guid,
    )
)


def _try(fn, default: object) -> tuple[bool, object]:
    try:
        return True, fn()
    except Exception:
        return False, default


class HashAlgorithm(CsObject):
    """SHA*/MD5 and HMAC*: ComputeHash(byte[]); HMAC keys via the constructor or `Key`."""

    __slots__ = ("Key", "algo")
    __cs_type__ = "HashAlgorithm"
    __cs_members__ = frozenset({"ComputeHash", "Key", "Hash", "Dispose", "HashSize"})
    __cs_settable__ = frozenset({"Key"})

    def __init__(self, algo: str, key: object = None) -> None:
        self.algo = algo
        self.Key = None if key is None else bytes_of(key)

    def ComputeHash(self, data: object, *range_: int) -> bytes:
        b = bytes_of(data)
        if range_:
            b = b[range_[0] : range_[0] + range_[1]]
        if self.Key is not None:
            return hmac.new(bytes_of(self.Key), b, self.algo).digest()
        return hashlib.new(self.algo, b).digest()

    @property
    def HashSize(self) -> int:
        return hashlib.new(self.algo).digest_size * 8

    def Dispose(self) -> None:
        return None


def _hash_type(name: str, algo: str, keyed: bool) -> None:
    def new(key: object = None) -> HashAlgorithm:
        return HashAlgorithm(algo, key if key is not None else (b"" if keyed else None))

    register(
        CsType(
            name,
            lambda v: isinstance(v, HashAlgorithm) and v.algo == algo,
            static_methods={
                "Create": new,
                "HashData": (lambda k, d: hmac.new(bytes_of(k), bytes_of(d), algo).digest())
                if keyed
                else (lambda d: hashlib.new(algo, bytes_of(d)).digest()),
            },
            new=new,
        ),
        name + "Managed",
    )


for _n, _a in (
    ("SHA1", "sha1"),
    ("SHA256", "sha256"),
    ("SHA384", "sha384"),
    ("SHA512", "sha512"),
    ("MD5", "md5"),
):
    _hash_type(_n, _a, False)
    _hash_type("HMAC" + _n, _a, True)


class StringBuilder(CsObject):
    """System.Text.StringBuilder."""

    __slots__ = ("_len", "_parts")
    __cs_type__ = "StringBuilder"
    __cs_members__ = frozenset(
        {"Append", "AppendLine", "AppendFormat", "ToString", "Length", "Clear", "Insert"}
    )

    def __init__(self, initial: object = None, *_: object) -> None:
        self._parts: list[str] = []
        self._len = 0
        if isinstance(initial, str):
            self.Append(initial)

    def Append(self, v: object, *_: object) -> StringBuilder:
        s = cs_str(v)
        check_length(self._len + len(s))
        spend()
        self._len += len(s)
        self._parts.append(s)
        return self

    def AppendLine(self, v: object = "") -> StringBuilder:
        return self.Append(cs_str(v) + "\r\n")

    def AppendFormat(self, fmt: object, *args: object) -> StringBuilder:
        from .strings import cs_format

        return self.Append(cs_format(fmt, *args))

    def Insert(self, index: int, v: object) -> StringBuilder:
        inserted = cs_str(v)
        check_length(self._len + len(inserted))
        spend()
        s = self.ToString()
        self._parts = [s[:index] + inserted + s[index:]]
        self._len = len(self._parts[0])
        return self

    def Clear(self) -> StringBuilder:
        self._parts, self._len = [], 0
        return self

    @property
    def Length(self) -> int:
        return self._len

    def ToString(self) -> str:
        return "".join(self._parts)


register(CsType("StringBuilder", lambda v: isinstance(v, StringBuilder), new=StringBuilder))


def exception_type(name: str) -> CsType:
    """An exception type `catch` and `is` match by the caught value's `cs_type`."""
    return register(CsType(name, lambda v: getattr(v, "cs_type", None) == name))


for _exc in [
    "Exception",
    "SystemException",
    "ArgumentException",
    "ArgumentNullException",
    "ArgumentOutOfRangeException",
    "InvalidOperationException",
    "FormatException",
    "NullReferenceException",
    "KeyNotFoundException",
    "JsonReaderException",
    "JsonException",
    "JsonSerializationException",
    "InvalidCastException",
    "OverflowException",
    "DivideByZeroException",
    "IndexOutOfRangeException",
    "NotSupportedException",
    "NotImplementedException",
    "UriFormatException",
    "CryptographicException",
    "TimeoutException",
    "MissingMemberException",
]:
    exception_type(_exc)


def contract_type(name: str) -> CsType:
    """A type the policy engine provides as CsObjects; casts check `__cs_type__`/interfaces."""

    def check(v: object) -> bool:
        return isinstance(v, CsObject) and (
            v.__cs_type__ == name or name in getattr(type(v), "__cs_interfaces__", ())
        )

    return register(CsType(name, check))


for _name in [
    "IResponse",
    "IRequest",
    "IMessage",
    "IMessageBody",
    "IUrl",
    "Jwt",
    "BasicAuthCredentials",
    "X500DistinguishedName",
    "PublicKey",
    "IApi",
    "IOperation",
    "IProduct",
    "ISubscription",
    "IUser",
    "IDeployment",
    "ILastError",
    "IGroup",
    "IUserIdentity",
    "IPrivateEndpointConnection",
    "IProxyRequestContext",
    "IContext",
    "IGateway",
    "IWorkspace",
    "Authorization",
]:
    contract_type(_name)


def _cipher(alg: object, key: object, iv: object):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    name = cs_str(getattr(alg, "name", alg)).lower()
    if name not in ("aes", "rijndael", "aesmanaged", "aescryptoserviceprovider"):
        raise cs_error("CryptographicException", f"unsupported algorithm '{name}'")
    try:
        return Cipher(algorithms.AES(bytes_of(key)), modes.CBC(bytes_of(iv)))
    except ValueError as e:
        raise cs_error("CryptographicException", str(e)) from None


def encrypt(data: object, alg: object, key: object, iv: object) -> bytes:
    """APIM's `byte[].Encrypt("Aes", key, iv)`: AES-CBC with PKCS#7 padding, as .NET's default."""
    from cryptography.hazmat.primitives import padding

    p = padding.PKCS7(128).padder()
    enc = _cipher(alg, key, iv).encryptor()
    return enc.update(p.update(bytes_of(data)) + p.finalize()) + enc.finalize()


def decrypt(data: object, alg: object, key: object, iv: object) -> bytes:
    from cryptography.hazmat.primitives import padding

    dec = _cipher(alg, key, iv).decryptor()
    u = padding.PKCS7(128).unpadder()
    try:
        return u.update(dec.update(bytes_of(data)) + dec.finalize()) + u.finalize()
    except ValueError:
        raise cs_error(
            "CryptographicException", "Padding is invalid and cannot be removed."
        ) from None


members(bytes, bytearray, methods={"Encrypt": encrypt, "Decrypt": decrypt})

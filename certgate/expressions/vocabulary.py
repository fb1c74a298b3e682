"""Which member names an expression may mention at all (checked at compile time).

A member name must be offered somewhere in the allow-list: by the .NET tables in `dotnet/`, by a
`CsObject` subclass's `__cs_members__`, or by APIM's documented context object model below. Anything
else (and anything reflective) is refused with its position when the policy is saved.
"""

from __future__ import annotations

from functools import cache

from .dotnet import METHODS, PROPS
from .dotnet.collections import LINQ
from .model import CsObject


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# APIM's documented `context` object model (learn.microsoft.com, "API Management policy
# expressions"): the names the policy engine's objects offer.
APIM_MEMBERS = _names(
    """
    Api Deployment Elapsed LastError Operation Product Request RequestId Response
    Subscription Timestamp Tracing User Variables Trace Workspace Id IsCurrentRevision Name
    Path Revision ServiceUrl Version Gateway GatewayId Region ServiceId ServiceName
    Certificates InstanceId IsManaged Host Port Query QueryString Scheme Body Certificate
    Headers IpAddress MatchedParameters Method OriginalUrl Url PrivateEndpointConnection
    GroupId MemberName StatusCode StatusReason As AsFormUrlEncodedContent ApprovalRequired
    Groups State SubscriptionLimit SubscriptionRequired UrlTemplate Source Reason Message
    Scope Section PolicyId CreatedDate EndDate Key PrimaryKey SecondaryKey StartDate Email
    ExternalId FirstName Identities LastName Note RegistrationDate Provider Value
    GetValueOrDefault ContainsKey TryGetValue Keys Values Count Thumbprint Subject
    SubjectName Issuer IssuerName SerialNumber NotBefore NotAfter GetNameInfo RawData Verify
    VerifyNoRevocation HasPrivateKey GetCertHash GetCertHashString GetSerialNumberString
    GetRawCertData FriendlyName Version SignatureAlgorithm PublicKey AsJwt TryParseJwt
    AsBasic TryParseBasic Algorithm Audiences Claims ExpirationTime IssuedAt Type UserId
    Password ToString Equals GetHashCode AccessToken GetRSAPrivateKey GetRSAPublicKey
    """
)

DENIED_MEMBERS = _names(
    """
    GetType GetTypeInfo GetMethod GetMethods GetProperty GetProperties GetField GetFields
    GetMember GetMembers InvokeMember Invoke DynamicInvoke CreateDelegate Assembly Module
    MemberwiseClone Finalize ReferenceEquals
    """
)


def _subclasses(cls: type[CsObject]) -> list[type[CsObject]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


@cache
def _static_names(nclasses: int) -> frozenset[str]:
    names = set(APIM_MEMBERS) | set(LINQ)
    for table in (PROPS, METHODS):
        for members in table.values():
            names.update(members)
    for sub in _subclasses(CsObject):
        names.update(getattr(sub, "__cs_members__", ()))
    return frozenset(names - DENIED_MEMBERS)


def known_member(name: str) -> bool:
    """Whether any allow-listed object offers a member called `name`."""
    return name in _static_names(len(_subclasses(CsObject)))

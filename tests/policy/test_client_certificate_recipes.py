"""APIM's three documented client-certificate `choose` policies, pasted verbatim (raw quotes).

Only the documentation's placeholders (trusted-issuer, expected-subject-name,
DESIRED-THUMBPRINT-IN-UPPER-CASE) are replaced by the values of the test PKI.
"""

# ruff: noqa: E501 - the documented policies are pasted verbatim
from __future__ import annotations

import pytest

from certgate.certs.verify import TrustStore, Verifier
from certgate.certs.x509 import X509Certificate2
from certgate.policy.context import Deployment
from tests import pki
from tests.policy.support import make_context, run

ISSUER_AND_SUBJECT = """<choose>
    <when condition="@(context.Request.Certificate == null || !context.Request.Certificate.Verify() || context.Request.Certificate.Issuer != "trusted-issuer" || context.Request.Certificate.SubjectName.Name != "expected-subject-name")" >
        <return-response>
            <set-status code="403" reason="Invalid client certificate" />
        </return-response>
    </when>
</choose>"""

THUMBPRINT = """<choose>
    <when condition="@(context.Request.Certificate == null || !context.Request.Certificate.Verify() || context.Request.Certificate.Thumbprint != "DESIRED-THUMBPRINT-IN-UPPER-CASE")" >
        <return-response>
            <set-status code="403" reason="Invalid client certificate" />
        </return-response>
    </when>
</choose>"""

UPLOADED = """<choose>
    <when condition="@(context.Request.Certificate == null || !context.Request.Certificate.Verify()  || !context.Deployment.Certificates.Any(c => c.Value.Thumbprint == context.Request.Certificate.Thumbprint))" >
        <return-response>
            <set-status code="403" reason="Invalid client certificate" />
        </return-response>
    </when>
</choose>
"""


@pytest.fixture(scope="module")
def world() -> dict:
    root = pki.ca("Trusted Root")
    other_root = pki.ca("Trusted Root")  # same name, different key: a wrong issuer
    client = root.issue("client-one")
    return {
        "verifier": Verifier(TrustStore([root.cert], use_system_roots=False)),
        "right": client,
        "wrong_thumbprint": root.issue("client-one"),
        "wrong_issuer": other_root.issue("client-one"),
    }


def _policy(recipe: str, world: dict) -> str:
    right = X509Certificate2(world["right"].cert)
    text = (
        recipe.replace("trusted-issuer", right.Issuer)
        .replace("expected-subject-name", right.SubjectName.Name)
        .replace("DESIRED-THUMBPRINT-IN-UPPER-CASE", world["right"].thumbprint)
    )
    return f"<policies><inbound>{text}</inbound><backend><base /></backend></policies>"


@pytest.mark.parametrize("recipe", [ISSUER_AND_SUBJECT, THUMBPRINT, UPLOADED])
@pytest.mark.parametrize("case", ["none", "wrong_thumbprint", "wrong_issuer", "right"])
async def test_documented_recipe(recipe: str, case: str, world: dict) -> None:
    # The issuer/subject recipe accepts any certificate of the right issuer and subject.
    passes = case == "right" or (case == "wrong_thumbprint" and recipe is ISSUER_AND_SUBJECT)
    status = 200 if passes else 403
    presented = None
    if case != "none":
        issued = world[case]
        presented = X509Certificate2(issued.cert, issued.chain, world["verifier"], {})
    uploaded = X509Certificate2(world["right"].cert)
    context = make_context(
        certificate=presented,
        deployment=Deployment({uploaded.Thumbprint: uploaded}),
    )
    response, _, forwarder = await run(_policy(recipe, world), context)
    assert response.StatusCode == status
    if status == 403:
        assert response.StatusReason == "Invalid client certificate"
        assert forwarder.calls == []
    else:
        assert len(forwarder.calls) == 1

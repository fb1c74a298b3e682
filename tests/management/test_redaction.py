"""Policy validation errors never show a secret named value, and never garble other text.

The rule (docs/security.md, "Secrets and key vaults"): only secret named values are redacted.
A secret of four characters or more becomes `{{displayName}}` in the reason and the element
name; a shorter one cannot be replaced without garbling the text, so a message containing it is
withheld.
"""

from __future__ import annotations

import pytest

POLICY = "/apis/a/policies/policy"


@pytest.fixture
def api(client):
    assert client.put("/apis/a", json={"properties": {"path": "a"}}).status_code == 201
    values = {
        "el": ("hidden-element-name", True),
        "short": ("ab", True),
        "retries": ("1", False),
    }
    for name, (value, secret) in values.items():
        body = {"properties": {"displayName": name, "value": value, "secret": secret}}
        assert client.put(f"/namedValues/{name}", json=body).status_code == 201
    return client


def _refusal(client, inbound: str) -> tuple[dict, str]:
    document = f"<policies><inbound>{inbound}</inbound><backend><base /></backend></policies>"
    response = client.put(POLICY, json={"properties": {"format": "rawxml", "value": document}})
    assert response.status_code == 400, response.text
    return response.json()["error"], response.text


@pytest.mark.parametrize(
    "inbound",
    [
        "<{{el}} />",
        "<choose><{{el}} /></choose>",
        '<set-header name="x" exists-action="{{el}}"><value>v</value></set-header>',
        '<set-variable name="v" value="@(&quot;{{el}}&quot; + )" />',
    ],
)
def test_secret_value_never_appears_in_message_element_or_target(api, inbound):
    error, text = _refusal(api, inbound)
    assert "hidden-element-name" not in text and "hidden" not in text
    assert "hidden" not in (error["target"] or "") + (error["details"][0]["target"] or "")


def test_secret_used_as_element_name_is_shown_as_its_display_name(api):
    error, _ = _refusal(api, "<{{el}} />")
    assert error["target"] == "{{el}}"
    assert error["message"].startswith("Error in element '{{el}}' on line 1")


def test_short_secret_withholds_the_message(api):
    error, text = _refusal(api, "<{{short}} />")
    assert "withheld" in error["message"] and "'short'" in error["message"]
    assert "'ab'" not in text and error["target"] != "ab"


def test_public_named_values_do_not_garble_the_message(api):
    with_name, _ = _refusal(api, '<set-variable name="r" value="{{retries}}" /><no-such-element />')
    literal, _ = _refusal(api, '<set-variable name="r" value="1" /><no-such-element />')
    assert with_name["message"] == literal["message"]
    assert "line 1" in with_name["message"] and "{{retries}}" not in with_name["message"]

"""An operation's response examples (APIM's operation contract `responses[].representations[]`),
rendered once per configuration for `mock-response`.

`responses` is `[{"statusCode": 200, "representations": [{"contentType": "application/json",
"examples": {"default": {"value": ...}}}]}]`; a string value is the body as it is, any other value
is written as JSON. An older contract's `sample` string counts as one more example.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


class ResponseExamples:
    """`select(status, content_type, index)` -> (content type, body) of a stored example."""

    __slots__ = ("_by_status",)

    def __init__(self, responses: Iterable[Mapping[str, Any]] = ()) -> None:
        self._by_status: dict[int, list[tuple[str, list[bytes]]]] = {}
        for response in responses:
            representations = self._by_status.setdefault(int(response["statusCode"]), [])
            for representation in response.get("representations") or ():
                bodies = [_body(example.get("value")) for example in _examples(representation)]
                representations.append((representation["contentType"], bodies))

    def select(self, status: int, content_type: str | None, index: int) -> tuple[str, bytes] | None:
        """The `index`-th example for `status` and `content_type` (None: the first content type
        with examples); None when there is none."""
        for media, bodies in self._by_status.get(status, ()):
            if content_type is not None and media.lower() != content_type.lower():
                continue
            if index < len(bodies):
                return media, bodies[index]
            if content_type is not None:
                return None
        return None


def _examples(representation: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    examples = list((representation.get("examples") or {}).values())
    if representation.get("sample") is not None:
        examples.append({"value": representation["sample"]})
    return examples


def _body(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def check_responses(responses: Any) -> str | None:
    """What is wrong with an operation's `responses` (a message naming the field), or None."""
    if not isinstance(responses, list):
        return "'responses' must be an array."
    for i, response in enumerate(responses):
        where = f"responses[{i}]"
        if not isinstance(response, dict):
            return f"'{where}' must be an object."
        status = response.get("statusCode")
        if type(status) is not int or not 100 <= status <= 599:
            return f"'{where}.statusCode' must be an HTTP status code (100-599)."
        representations = response.get("representations") or []
        if not isinstance(representations, list):
            return f"'{where}.representations' must be an array."
        for j, representation in enumerate(representations):
            inner = f"{where}.representations[{j}]"
            if not isinstance(representation, dict):
                return f"'{inner}' must be an object."
            media = representation.get("contentType")
            if not isinstance(media, str) or not media or any(c in media for c in "\r\n\0"):
                return f"'{inner}.contentType' must be a media type."
            examples = representation.get("examples") or {}
            if not isinstance(examples, dict) or not all(
                isinstance(e, dict) for e in examples.values()
            ):
                return f"'{inner}.examples' must map example names to {{\"value\": ...}} objects."
            sample = representation.get("sample")
            if sample is not None and not isinstance(sample, str):
                return f"'{inner}.sample' must be a string."
    return None

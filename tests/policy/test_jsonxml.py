"""The XML <-> JSON conversion on its own (sans I/O), against Json.NET's documented examples
("Converting between JSON and XML", SerializeXmlNode / DeserializeXmlNode)."""

from __future__ import annotations

import json

import pytest

from certgate.policy.jsonxml import ConversionError, JsonToXml, json_to_xml, xml_to_json

PEOPLE_XML = """<?xml version="1.0" standalone="no"?>
<root>
  <person id="1">
    <name>Alan</name>
    <url>http://www.google.com</url>
  </person>
  <person id="2">
    <name>Louis</name>
    <url>http://www.yahoo.com</url>
  </person>
</root>"""

PEOPLE_JSON = {
    "?xml": {"@version": "1.0", "@standalone": "no"},
    "root": {
        "person": [
            {"@id": "1", "name": "Alan", "url": "http://www.google.com"},
            {"@id": "2", "name": "Louis", "url": "http://www.yahoo.com"},
        ]
    },
}


def test_serialize_xml_node_example() -> None:
    text = xml_to_json(PEOPLE_XML, direct=True, always_array=False, max_depth=64)
    assert json.loads(text) == PEOPLE_JSON


def test_deserialize_xml_node_example_under_apims_document_root() -> None:
    assert json_to_xml(json.dumps(PEOPLE_JSON), JsonToXml()) == (
        '<?xml version="1.0" standalone="no"?><Document><root>'
        '<person id="1"><name>Alan</name><url>http://www.google.com</url></person>'
        '<person id="2"><name>Louis</name><url>http://www.yahoo.com</url></person>'
        "</root></Document>"
    )


def test_mixed_content_comments_and_namespaces_in_direct_form() -> None:
    xml = '<a xmlns:p="urn:p" p:k="v">one<!--c--><p:b>x</p:b>two</a>'
    direct = json.loads(xml_to_json(xml, direct=True, always_array=False, max_depth=64))
    assert direct == {
        "a": {
            "@xmlns:p": "urn:p",
            "@p:k": "v",
            "#text": ["one", "two"],
            "#comment": "c",
            "p:b": "x",
        }
    }
    friendly = json.loads(xml_to_json(xml, direct=False, always_array=False, max_depth=64))
    assert friendly == {"a": {"@k": "v", "#text": ["one", "two"], "b": "x"}}


@pytest.mark.parametrize(
    ("options", "body", "xml"),
    [
        (JsonToXml(), '{"n": 1.50, "b": false}', "<Document><n>1.50</n><b>false</b></Document>"),
        (JsonToXml(parse_date=False), '{"d": "2024-01-02T03:04:05.1200000Z"}',
         "<Document><d>2024-01-02T03:04:05.1200000Z</d></Document>"),
        (JsonToXml(namespace_prefix="xmlns", separator=":"),
         '{"xmlns:p": "urn:p", "p:a": "x"}',
         '<Document xmlns:p="urn:p"><p:a>x</p:a></Document>'),
        (JsonToXml(), '{"1st": "a", "a&b": "<"}',
         "<Document><_x0031_st>a</_x0031_st><a_x0026_b>&lt;</a_x0026_b></Document>"),
    ],
)  # fmt: skip
def test_json_to_xml_options(options: JsonToXml, body: str, xml: str) -> None:
    assert json_to_xml(body, options) == xml


@pytest.mark.parametrize(
    "body", ['"text"', "1", '{"": 1}', '{"@a": {"b": 1}}', "{not json", "[" * 5000]
)
def test_json_that_cannot_be_converted_is_refused_with_a_reason(body: str) -> None:
    with pytest.raises(ConversionError):
        json_to_xml(body, JsonToXml())

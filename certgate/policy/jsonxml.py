"""XML <-> JSON the way Json.NET's XmlNodeConverter does it (what APIM's xml-to-json and
json-to-xml run), as pure functions on text.

XML -> JSON (`SerializeXmlNode`): an element holding only text is a string, an empty one null,
otherwise an object; attributes are `@name`, text beside other content `#text` (CDATA too),
comments `#comment`, the declaration `?xml`; same-named siblings become an array; every value is
a string. JSON -> XML (`DeserializeXmlNode(json, "Document")`): properties are
elements, `@name` attributes, `#text` text, arrays repeat their property's element, null is an
empty element, names that are not XML names are encoded as XmlConvert.EncodeLocalName does
(`a b` -> `a_x0020_b`). Both refuse input nested deeper than `max_depth`; XML with a DTD is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
ROOT = "Document"


class ConversionError(ValueError):
    """The body cannot be converted; the message says why (a PolicyRuntimeError's message)."""


# -- XML -> JSON ------------------------------------------------------------------------------
def xml_to_json(text: str, *, direct: bool, always_array: bool, max_depth: int) -> str:
    value = xml_to_object(text, direct=direct, always_array=always_array, max_depth=max_depth)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def xml_to_object(
    text: str, *, direct: bool, always_array: bool, max_depth: int, nil_blank: bool | None = None
) -> dict[str, Any]:
    """The XML document as Json.NET's JSON object (dicts, lists, strings, None); an element
    with `xsi:nil="true"` is "" when `nil_blank`, None when False (set-body's `xsi-nil`)."""
    try:
        root = etree.fromstring(text.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as error:
        raise ConversionError(f"The body is not well-formed XML: {error}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise ConversionError("The body is not converted: it contains a DOCTYPE declaration.")
    reader = _XmlReader(direct, always_array, max_depth, nil_blank)
    result: dict[str, Any] = {}
    declaration_text = text.lstrip()
    if direct and declaration_text.startswith("<?xml"):
        declaration_text = declaration_text.partition("?>")[0]
        declaration = {"@version": tree.docinfo.xml_version or "1.0"}
        if "encoding" in declaration_text:
            declaration["@encoding"] = tree.docinfo.encoding
        if "standalone" in declaration_text:
            declaration["@standalone"] = "yes" if tree.docinfo.standalone else "no"
        result["?xml"] = declaration
    result[reader.name(root)] = reader.value(root, 1)
    return result


_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


class _XmlReader:
    def __init__(
        self, direct: bool, always_array: bool, max_depth: int, nil_blank: bool | None
    ) -> None:
        self.direct = direct
        self.always_array = always_array
        self.max_depth = max_depth
        self.nil_blank = nil_blank

    def name(self, node: Any) -> str:
        qname = etree.QName(node)
        if self.direct and node.prefix:
            return f"{node.prefix}:{qname.localname}"
        return qname.localname

    def attribute_name(self, name: str, node: Any) -> str:
        qname = etree.QName(name)
        if self.direct and qname.namespace:
            prefix = next((p for p, u in node.nsmap.items() if u == qname.namespace and p), None)
            if prefix:
                return f"@{prefix}:{qname.localname}"
        return f"@{qname.localname}"

    def value(self, element: Any, depth: int) -> Any:
        if depth > self.max_depth:
            raise ConversionError(f"The XML body is nested deeper than {self.max_depth} levels.")
        if self.nil_blank is not None and element.get(_XSI_NIL) == "true":
            return "" if self.nil_blank else None
        groups: dict[str, list[Any]] = {}
        if self.direct:
            parent = element.getparent()
            inherited = parent.nsmap if parent is not None else {}
            for prefix, uri in element.nsmap.items():
                if inherited.get(prefix) != uri:
                    groups[f"@xmlns:{prefix}" if prefix else "@xmlns"] = [uri]
        for name, value in element.attrib.items():
            groups[self.attribute_name(name, element)] = [value]
        attributes = bool(groups)
        self._text(groups, element.text)
        elements = set()
        for child in element:
            if isinstance(child, etree._Comment):
                if self.direct:
                    groups.setdefault("#comment", []).append(child.text or "")
            elif isinstance(child.tag, str):
                key = self.name(child)
                elements.add(key)
                groups.setdefault(key, []).append(self.value(child, depth + 1))
            self._text(groups, child.tail)
        if not groups:
            return None
        if not attributes and list(groups) == ["#text"] and len(groups["#text"]) == 1:
            return groups["#text"][0]
        result: dict[str, Any] = {}
        for key, values in groups.items():
            forced = self.always_array and key in elements
            result[key] = values if len(values) > 1 or forced else values[0]
        return result

    @staticmethod
    def _text(groups: dict[str, list[Any]], text: str | None) -> None:
        if text is None or not text.strip():
            return
        groups.setdefault("#text", []).append(text)


# -- JSON -> XML ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JsonToXml:
    parse_date: bool = True
    separator: str | None = None
    namespace_prefix: str | None = None
    attribute_block: str | None = None
    max_depth: int = 64


class _Number(str):
    """A JSON number, kept as its text (Json.NET writes numbers as they were read)."""


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?$")


def json_to_xml(text: str, options: JsonToXml) -> str:
    try:
        value = json.loads(text, parse_int=_Number, parse_float=_Number, parse_constant=_Number)
    except (ValueError, RecursionError) as error:
        raise ConversionError(f"The body is not valid JSON: {error}") from None
    writer = _XmlWriter(options)
    out: list[str] = []
    if isinstance(value, dict):
        declaration = value.get("?xml")
        if isinstance(declaration, dict):  # Json.NET writes it before the root element
            out.append(_declaration(declaration))
        writer.element(ROOT, value, out, 1)
    elif isinstance(value, list):
        writer.element(ROOT, {"Array": value}, out, 1)
    else:
        raise ConversionError("The JSON body must be an object or an array to convert to XML.")
    return "".join(out)


def _declaration(fields: dict[str, Any]) -> str:
    """`{"@version": "1.0", "@standalone": "no"}` as `<?xml version="1.0" standalone="no"?>`."""
    values = {"version": fields.get("@version") or "1.0"}
    for name in ("encoding", "standalone"):
        if fields.get(f"@{name}") is not None:
            values[name] = fields[f"@{name}"]
    text = "".join(f' {name}="{_escape(str(v), quote=True)}"' for name, v in values.items())
    return f"<?xml{text}?>"


def encode_name(name: str) -> str:
    """XmlConvert.EncodeLocalName: characters not allowed in an XML name as `_xHHHH_`."""
    if not name:
        raise ConversionError("A JSON property with an empty name cannot be converted to XML.")
    out = []
    for index, char in enumerate(name):
        allowed = char.isalpha() or char == "_" or (index and (char.isdigit() or char in "-."))
        out.append(char if allowed else f"_x{ord(char):04X}_")
    return "".join(out)


def _escape(text: str, quote: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


class _XmlWriter:
    def __init__(self, options: JsonToXml) -> None:
        self.options = options

    def name(self, name: str) -> str:
        separator = self.options.separator
        if separator and separator in name:
            prefix, _, local = name.partition(separator)
            return f"{encode_name(prefix)}:{encode_name(local)}"
        return encode_name(name)

    def scalar(self, value: Any) -> str:
        if value is True or value is False:
            return "true" if value else "false"
        if isinstance(value, _Number):
            return str(value)
        if isinstance(value, str) and self.options.parse_date and _ISO_DATE.match(value):
            return _round_trip_date(value)
        return str(value)

    def element(self, name: str, value: Any, out: list[str], depth: int) -> None:
        if depth > self.options.max_depth:
            raise ConversionError(
                f"The JSON body is nested deeper than {self.options.max_depth} levels."
            )
        tag = self.name(name)
        if isinstance(value, list):
            for item in value:
                self.element(name, item, out, depth + 1)
            return
        if value is None:
            out.append(f"<{tag} />")
            return
        if not isinstance(value, dict):
            out.append(f"<{tag}>{_escape(self.scalar(value))}</{tag}>")
            return
        attributes: list[str] = []
        content: list[str] = []
        for key, item in value.items():
            self.member(key, item, attributes, content, depth)
        head = f"<{tag}{''.join(attributes)}"
        out.append(f"{head}>{''.join(content)}</{tag}>" if content else f"{head} />")

    def member(
        self, key: str, item: Any, attributes: list[str], content: list[str], depth: int
    ) -> None:
        prefix, block = self.options.namespace_prefix, self.options.attribute_block
        if block is not None and key == block and isinstance(item, dict):
            for name, value in item.items():
                self.attribute(name, value, attributes)
        elif key.startswith("@"):
            self.attribute(key[1:], item, attributes)
        elif prefix is not None and key.startswith(prefix) and not isinstance(item, dict | list):
            self.attribute(key, item, attributes)
        elif key in ("#text", "#cdata-section"):
            text = "" if item is None else self.scalar(item)
            content.append(f"<![CDATA[{text}]]>" if key == "#cdata-section" else _escape(text))
        elif key == "#comment":
            content.append(f"<!--{'' if item is None else self.scalar(item)}-->")
        elif not key.startswith(("?", "$")):
            self.element(key, item, content, depth + 1)

    def attribute(self, name: str, value: Any, attributes: list[str]) -> None:
        if isinstance(value, dict | list):
            raise ConversionError(
                f"The attribute '{name}' must hold a value, not an object or array."
            )
        text = "" if value is None else self.scalar(value)
        attributes.append(f' {self.name(name)}="{_escape(text, quote=True)}"')


def _round_trip_date(value: str) -> str:
    """A JSON date as Json.NET writes the DateTime it parsed: round-trip form, no trailing zeros."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    text = parsed.strftime("%Y-%m-%dT%H:%M:%S")
    if parsed.microsecond:
        text += f".{parsed.microsecond:06d}".rstrip("0")
    if value.endswith("Z"):
        return text + "Z"
    return text + value[-6:] if parsed.tzinfo is not None else text

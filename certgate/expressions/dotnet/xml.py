"""System.Xml.Linq: XDocument, XElement, XAttribute, XName and XNamespace, read with expat.

Hostile input: a document with a DTD is refused (XmlException, as .NET does with
DtdProcessing.Prohibit), so no entity can expand or reach outside the text; trees are walked
without recursion, so depth costs no stack. Whitespace-only text between elements is dropped
(LoadOptions.None). `ToString()` indents elements that hold only elements, two spaces a level.
"""

from __future__ import annotations

import xml.parsers.expat
from collections.abc import Iterator
from xml.sax.saxutils import escape, quoteattr

from ..errors import cs_error
from ..model import CsObject
from ..runtime import cs_str
from . import CsType, register


class XName(CsObject):
    """An expanded name; equal to a string in its `{namespace}local` (Clark) spelling."""

    __slots__ = ("LocalName", "NamespaceName")
    __cs_type__ = "XName"
    __cs_members__ = frozenset({"LocalName", "NamespaceName", "ToString", "Equals"})

    def __init__(self, namespace: str, local: str) -> None:
        self.NamespaceName = namespace
        self.LocalName = local

    @classmethod
    def of(cls, name: object) -> XName:
        """C#'s implicit string -> XName conversion (`Element("a")`, `Element("{urn:x}a")`)."""
        if isinstance(name, XName):
            return name
        if name is None:
            raise cs_error("ArgumentNullException", "Value cannot be null. (Parameter 'name')")
        text = cs_str(name)
        if text.startswith("{") and "}" in text:
            namespace, _, local = text[1:].partition("}")
            return cls(namespace, local)
        return cls("", text)

    def ToString(self) -> str:
        return f"{{{self.NamespaceName}}}{self.LocalName}" if self.NamespaceName else self.LocalName

    def Equals(self, other: object) -> bool:
        return self.__cs_equals__(other)

    def __cs_equals__(self, other: object) -> bool:
        if isinstance(other, str | XName):
            other = XName.of(other)
            return (other.NamespaceName, other.LocalName) == (self.NamespaceName, self.LocalName)
        return False


class XNamespace(CsObject):
    """A namespace URI; `ns + "local"` is the XName `{uri}local`."""

    __slots__ = ("NamespaceName",)
    __cs_type__ = "XNamespace"
    __cs_members__ = frozenset({"NamespaceName", "GetName", "ToString", "Equals"})

    def __init__(self, uri: str) -> None:
        self.NamespaceName = uri

    @classmethod
    def of(cls, uri: object) -> XNamespace:
        """`XNamespace.Get(uri)` and C#'s implicit string -> XNamespace conversion."""
        if isinstance(uri, XNamespace):
            return uri
        if uri is None:
            raise cs_error("ArgumentNullException", "Value cannot be null. (Parameter 'name')")
        return cls(cs_str(uri))

    def GetName(self, local: object) -> XName:
        return XName(self.NamespaceName, cs_str(local))

    def ToString(self) -> str:
        return self.NamespaceName

    def Equals(self, other: object) -> bool:
        return self.__cs_equals__(other)

    def __cs_equals__(self, other: object) -> bool:
        if isinstance(other, str | XNamespace):
            return XNamespace.of(other).NamespaceName == self.NamespaceName
        return False

    def __cs_add__(self, local: object) -> XName:
        return self.GetName(local)


class XAttribute(CsObject):
    __slots__ = ("Name", "Value")
    __cs_type__ = "XAttribute"
    __cs_members__ = frozenset({"Name", "Value", "ToString"})

    def __init__(self, name: object, value: object) -> None:
        self.Name = XName.of(name)
        self.Value = cs_str(value)

    def ToString(self) -> str:
        return f"{self.Name.LocalName}={quoteattr(self.Value)}"

    def __cs_convert__(self, type_name: str) -> object:
        return _convert(self.Value, type_name)


def _convert(text: str, type_name: str) -> object:
    """`(string)el`, `(int)el`, `(bool)el`... as LINQ to XML's explicit conversions."""
    from . import lookup

    if type_name in ("string", "String"):
        return text
    if type_name in ("bool", "Boolean"):  # XmlConvert.ToBoolean
        value = text.strip()
        if value not in ("true", "false", "1", "0"):
            raise cs_error("FormatException", f"The string '{text}' is not a valid Boolean value.")
        return value in ("true", "1")
    target = lookup(type_name)
    parse = target.static_methods.get("Parse") if target is not None else None
    if parse is None:
        raise cs_error("InvalidCastException", f"Unable to cast XElement to {type_name}.")
    return parse(text)


class XElement(CsObject):
    """An element: its name, attributes, and child nodes (elements and text)."""

    __slots__ = ("Name", "Parent", "_attributes", "_nodes")
    __cs_type__ = "XElement"
    __cs_members__ = frozenset(
        {
            "Name",
            "Value",
            "Parent",
            "Attribute",
            "Attributes",
            "Element",
            "Elements",
            "Descendants",
            "DescendantsAndSelf",
            "Ancestors",
            "HasElements",
            "HasAttributes",
            "IsEmpty",
            "ToString",
        }
    )

    def __init__(self, name: object, *content: object) -> None:
        self.Name = XName.of(name)
        self.Parent: XElement | None = None
        self._attributes: list[XAttribute] = []
        self._nodes: list[XElement | str] = []
        for item in content:
            self._add(item)

    def _add(self, item: object) -> None:
        if isinstance(item, XAttribute):
            self._attributes.append(item)
        elif isinstance(item, XElement):
            item.Parent = self
            self._nodes.append(item)
        elif isinstance(item, list | tuple):
            for inner in item:
                self._add(inner)
        elif item is not None:
            self._nodes.append(cs_str(item))

    @property
    def Value(self) -> str:
        return "".join(n for n in self._walk(text=True) if isinstance(n, str))

    @property
    def HasElements(self) -> bool:
        return any(isinstance(n, XElement) for n in self._nodes)

    @property
    def HasAttributes(self) -> bool:
        return bool(self._attributes)

    @property
    def IsEmpty(self) -> bool:
        return not self._nodes

    def Attribute(self, name: object) -> XAttribute | None:
        wanted = XName.of(name)
        return next((a for a in self._attributes if wanted.__cs_equals__(a.Name)), None)

    def Attributes(self, name: object = None) -> list[XAttribute]:
        if name is None:
            return list(self._attributes)
        wanted = XName.of(name)
        return [a for a in self._attributes if wanted.__cs_equals__(a.Name)]

    def Element(self, name: object) -> XElement | None:
        wanted = XName.of(name)
        return next((e for e in self._children() if wanted.__cs_equals__(e.Name)), None)

    def Elements(self, name: object = None) -> list[XElement]:
        return _named(self._children(), name)

    def Descendants(self, name: object = None) -> list[XElement]:
        found = [n for n in self._walk(text=False) if n is not self]
        return _named(found, name)  # type: ignore[arg-type]

    def DescendantsAndSelf(self, name: object = None) -> list[XElement]:
        return _named(list(self._walk(text=False)), name)  # type: ignore[arg-type]

    def Ancestors(self, name: object = None) -> list[XElement]:
        out = []
        node = self.Parent
        while node is not None:
            out.append(node)
            node = node.Parent
        return _named(out, name)

    def ToString(self) -> str:
        return _render(self)

    def __cs_convert__(self, type_name: str) -> object:
        return _convert(self.Value, type_name)

    def _children(self) -> Iterator[XElement]:
        return (n for n in self._nodes if isinstance(n, XElement))

    def _walk(self, text: bool) -> Iterator[XElement | str]:
        """This element and everything below it in document order, without recursion."""
        stack: list[XElement | str] = [self]
        while stack:
            node = stack.pop()
            if isinstance(node, XElement):
                yield node
                stack.extend(reversed(node._nodes if text else list(node._children())))
            else:
                yield node


def _named(elements: list[XElement] | Iterator[XElement], name: object) -> list[XElement]:
    if name is None:
        return list(elements)
    wanted = XName.of(name)
    return [e for e in elements if wanted.__cs_equals__(e.Name)]


def _render(root: XElement) -> str:
    """Serialize as XElement.ToString(): namespaces declared where they change, indentation
    for elements holding only elements."""
    out: list[str] = []
    # (element, depth, namespace in scope) to open, or a string to emit as-is
    stack: list[tuple[XElement, int, str] | str] = [(root, 0, "")]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        element, depth, scope = item
        namespace = element.Name.NamespaceName
        attrs = "".join(" " + a.ToString() for a in element._attributes)
        if namespace != scope:
            attrs = f" xmlns={quoteattr(namespace)}" + attrs
        tag = element.Name.LocalName
        if not element._nodes:
            out.append(f"<{tag}{attrs} />")
            continue
        out.append(f"<{tag}{attrs}>")
        indent = all(isinstance(n, XElement) for n in element._nodes)
        pieces: list[tuple[XElement, int, str] | str] = []
        for node in element._nodes:
            if indent:
                pieces.append("\n" + "  " * (depth + 1))
            child = (node, depth + 1, namespace) if isinstance(node, XElement) else escape(node)
            pieces.append(child)
        pieces.append(("\n" + "  " * depth if indent else "") + f"</{tag}>")
        stack.extend(reversed(pieces))
    return "".join(out)


class XDocument(CsObject):
    __slots__ = ("Root",)
    __cs_type__ = "XDocument"
    __cs_members__ = frozenset({"Root", "Elements", "Descendants", "Element", "ToString"})

    def __init__(self, *content: object) -> None:
        self.Root = next((c for c in content if isinstance(c, XElement)), None)

    def Element(self, name: object) -> XElement | None:
        root = self.Root
        return root if root is not None and XName.of(name).__cs_equals__(root.Name) else None

    def Elements(self, name: object = None) -> list[XElement]:
        return _named([self.Root] if self.Root is not None else [], name)

    def Descendants(self, name: object = None) -> list[XElement]:
        return [] if self.Root is None else self.Root.DescendantsAndSelf(name)

    def ToString(self) -> str:
        return "" if self.Root is None else self.Root.ToString()


def _xml_error(message: str) -> Exception:
    return cs_error("XmlException", message)


def parse_element(text: object) -> XElement:
    """XElement.Parse / XDocument.Parse's root: XmlException for text that is not XML."""
    if text is None:
        raise cs_error("ArgumentNullException", "Value cannot be null. (Parameter 'text')")
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[XElement] = []
    roots: list[XElement] = []

    def refuse_dtd(*_: object) -> None:
        raise _xml_error("For security reasons DTD is prohibited in this XML document.")

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = XElement(_expat_name(tag))
        element._attributes = [XAttribute(_expat_name(k), v) for k, v in attrs.items()]
        if stack:
            element.Parent = stack[-1]
            stack[-1]._nodes.append(element)
        else:
            roots.append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        element = stack.pop()  # whitespace-only text is insignificant (LoadOptions.None)
        element._nodes = [n for n in element._nodes if not isinstance(n, str) or n.strip()]

    def chars(data: str) -> None:
        if stack:
            nodes = stack[-1]._nodes
            if nodes and isinstance(nodes[-1], str):
                nodes[-1] += data
            else:
                nodes.append(data)

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.buffer_text = True
    try:
        parser.Parse(cs_str(text), True)
    except xml.parsers.expat.ExpatError as e:
        raise _xml_error(
            f"{xml.parsers.expat.ErrorString(e.code)}. Line {e.lineno}, position {e.offset + 1}."
        ) from None
    if not roots:
        raise _xml_error("Root element is missing.")
    return roots[0]


def _expat_name(name: str) -> XName:
    namespace, sep, local = name.partition(" ")
    return XName(namespace, local) if sep else XName("", name)


register(
    CsType(
        "XNamespace",
        lambda v: isinstance(v, XNamespace),
        convert=XNamespace.of,
        implicit=XNamespace.of,
        static_props={
            "None": lambda: XNamespace(""),
            "Xml": lambda: XNamespace("http://www.w3.org/XML/1998/namespace"),
            "Xmlns": lambda: XNamespace("http://www.w3.org/2000/xmlns/"),
        },
        static_methods={"Get": XNamespace.of},
    )
)
register(
    CsType(
        "XName",
        lambda v: isinstance(v, XName),
        convert=XName.of,
        implicit=XName.of,
        static_methods={
            "Get": lambda name, namespace="": XName.of(
                f"{{{namespace}}}{name}" if namespace else name
            )
        },
    )
)
register(
    CsType(
        "XElement",
        lambda v: isinstance(v, XElement),
        static_methods={"Parse": lambda text, *_: parse_element(text)},
        new=XElement,
    )
)
register(
    CsType(
        "XDocument",
        lambda v: isinstance(v, XDocument),
        static_methods={"Parse": lambda text, *_: XDocument(parse_element(text))},
        new=XDocument,
    )
)
register(CsType("XAttribute", lambda v: isinstance(v, XAttribute), new=XAttribute))

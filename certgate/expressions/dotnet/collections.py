"""Arrays, `List<T>`, `Dictionary<K,V>`, `KeyValuePair` and LINQ over anything enumerable.

Python `list` stands for arrays and `List<T>`, `dict` for `Dictionary<K,V>` (enumerated as
`KeyValuePair`s), `bytes`/`bytearray` for `byte[]`. A `CsObject` is enumerable when it defines
`__iter__`; a dictionary-like one yields `KeyValuePair`s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import cast, overload

from ..budget import check_items
from ..errors import cs_error
from ..model import CsObject
from ..runtime import Char, Number, compare, equals
from . import CsType, members, register
from .enums import ignore_case


class KeyValuePair(CsObject):
    """`KeyValuePair<TKey, TValue>` as yielded by dictionary enumeration."""

    __slots__ = ("Key", "Value")
    __cs_type__ = "KeyValuePair"
    __cs_members__ = frozenset({"Key", "Value", "ToString"})

    def __init__(self, key: object, value: object) -> None:
        self.Key = key
        self.Value = value

    def ToString(self) -> str:
        from ..runtime import cs_str

        return f"[{cs_str(self.Key)}, {cs_str(self.Value)}]"


class ReadOnlyDictionary(CsObject):
    """`IReadOnlyDictionary<string, T>` over a dict its owner fills; keys are case-sensitive.

    Subclasses define `GetValueOrDefault` (APIM's extension differs per value type) and may
    override `_item` to hand out copies of mutable values."""

    __slots__ = ("_values",)
    __cs_type__ = "IReadOnlyDictionary<string, object>"
    __cs_members__ = frozenset(
        {"GetValueOrDefault", "ContainsKey", "TryGetValue", "Count", "Keys", "Values"}
    )

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = values

    @staticmethod
    def _item(value: object) -> object:
        return value

    def ContainsKey(self, name: str) -> bool:
        return name in self._values

    def TryGetValue(self, name: str) -> tuple[bool, object]:
        if name not in self._values:
            return False, None
        return True, self._item(self._values[name])

    @property
    def Count(self) -> int:
        return len(self._values)

    @property
    def Keys(self) -> list[str]:
        return list(self._values)

    @property
    def Values(self) -> list[object]:
        return [self._item(v) for v in self._values.values()]

    def __getitem__(self, name: str) -> object:
        return self._item(self._values[name])

    def __iter__(self) -> Iterator[KeyValuePair]:
        return (KeyValuePair(k, self._item(v)) for k, v in self._values.items())

    def __len__(self) -> int:
        return len(self._values)


class StringValuesDictionary(ReadOnlyDictionary):
    """`IReadOnlyDictionary<string, string[]>` with APIM's `GetValueOrDefault` (values joined
    with commas): URL query parameters, JWT claims."""

    __slots__ = ()
    __cs_type__ = "IReadOnlyDictionary<string, string[]>"
    # a copy of the owner's list (mypy types `staticmethod(list)` by list's no-argument overload)
    _item = staticmethod(list)  # type: ignore[assignment, var-annotated]

    def __getitem__(self, name: str) -> list[str]:
        return list(self._values[name])  # type: ignore[call-overload]  # its owner's lists

    @overload
    def GetValueOrDefault(self, name: str, default: str) -> str: ...
    @overload
    def GetValueOrDefault(self, name: str, default: None = None) -> str | None: ...
    def GetValueOrDefault(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name)
        return default if values is None else ",".join(values)  # type: ignore[arg-type]


def enumerate_cs(v: object) -> Iterable[object]:
    """What `foreach` visits in `v`; NullReferenceException for null."""
    if isinstance(v, list | tuple):
        return v
    if isinstance(v, dict):
        return [KeyValuePair(k, x) for k, x in v.items()]
    if isinstance(v, str):
        return [Char(c) for c in v]
    if isinstance(v, bytes | bytearray):
        return list(v)
    if isinstance(v, CsObject) and hasattr(v, "__iter__"):
        return v
    if v is None:
        raise cs_error("ArgumentNullException", "Value cannot be null. (Parameter 'source')")
    raise cs_error("InvalidCastException", f"{type(v).__name__} is not enumerable")


def is_enumerable(t: type) -> bool:
    return issubclass(t, list | tuple | dict | str | bytes | bytearray) or (
        issubclass(t, CsObject) and hasattr(t, "__iter__")
    )


def _items(v: object) -> list[object]:
    items = list(enumerate_cs(v))
    check_items(len(items))
    return items


_NONE = object()


def _first(seq: object, pred: Callable | None = None, default: object = _NONE, last: bool = False):
    items = _items(seq)
    if last:
        items.reverse()
    for x in items:
        if pred is None or pred(x) is True:
            return x
    if default is _NONE:
        raise cs_error("InvalidOperationException", "Sequence contains no matching element")
    return default


def _single(seq: object, pred: Callable | None = None, default: object = _NONE):
    found = [x for x in _items(seq) if pred is None or pred(x) is True]
    if len(found) > 1:
        raise cs_error("InvalidOperationException", "Sequence contains more than one element")
    if not found:
        if default is _NONE:
            raise cs_error("InvalidOperationException", "Sequence contains no matching element")
        return default
    return found[0]


def _order(seq: object, key: Callable | None = None, descending: bool = False) -> list[object]:
    items = _items(seq)
    k = key or (lambda x: x)

    def cmp(a: object, b: object) -> int:
        ka, kb = k(a), k(b)
        if ka is None or kb is None:
            return (ka is not None) - (kb is not None)
        return compare(ka, kb)

    return sorted(items, key=functools.cmp_to_key(cmp), reverse=descending)


def _contains(seq: object, value: object, comparer: object = None) -> bool:
    if isinstance(seq, str) and not isinstance(seq, Char):
        from .strings import _fold

        return _fold(str(value), comparer) in _fold(seq, comparer)
    if ignore_case(comparer):
        low = str(value).lower()
        return any(isinstance(x, str) and x.lower() == low for x in _items(seq))
    return any(equals(x, value) for x in _items(seq))


def _distinct(seq: object) -> list[object]:
    out: list[object] = []
    for x in _items(seq):
        if not any(equals(x, y) for y in out):
            out.append(x)
    return out


def _sum(seq: object, sel: Callable | None = None) -> Number:
    from ..runtime import add

    total: object = 0
    for x in _items(seq):
        total = add(total, sel(x) if sel else x)
    return cast(Number, total)  # C# sums numbers, and `add` keeps numbers numbers


def _minmax(seq: object, sel: Callable | None = None, sign: int = 1) -> object:
    vals = [sel(x) if sel else x for x in _items(seq)]
    if not vals:
        raise cs_error("InvalidOperationException", "Sequence contains no elements")
    best = vals[0]
    for v in vals[1:]:
        if compare(v, best) * sign > 0:
            best = v
    return best


def _to_dict(seq: object, key: Callable, value: Callable | None = None) -> dict:
    out: dict = {}
    for x in _items(seq):
        k = key(x)
        if k in out:
            raise cs_error("ArgumentException", "An item with the same key has already been added.")
        out[k] = value(x) if value else x
    return out


def _select(seq: object, f: Callable) -> list[object]:
    code = getattr(f, "__code__", None)
    if code is not None and code.co_argcount == 2:
        return [f(x, i) for i, x in enumerate(_items(seq))]
    return [f(x) for x in _items(seq)]


def _where(seq: object, f: Callable) -> list[object]:
    return [x for x in _items(seq) if f(x) is True]


def _select_many(seq: object, f: Callable) -> list[object]:
    return [y for x in _items(seq) for y in _items(f(x))]


def _group_by(seq: object, key: Callable) -> list[Grouping]:
    groups: dict = {}
    for x in _items(seq):
        groups.setdefault(key(x), []).append(x)
    return [Grouping(k, v) for k, v in groups.items()]


class Grouping(list, CsObject):
    """IGrouping<TKey, T>: a list with a `Key`."""

    __cs_type__ = "IGrouping"
    __cs_members__ = frozenset({"Key"})

    def __init__(self, key: object, items: list) -> None:
        super().__init__(items)
        self.Key = key


LINQ: dict[str, Callable[..., object]] = {
    "Any": lambda s, p=None: any(p(x) is True for x in _items(s)) if p else bool(_items(s)),
    "All": lambda s, p: all(p(x) is True for x in _items(s)),
    "Where": _where,
    "Select": _select,
    "SelectMany": _select_many,
    "First": lambda s, p=None: _first(s, p),
    "FirstOrDefault": lambda s, p=None: _first(s, p, None),
    "Last": lambda s, p=None: _first(s, p, last=True),
    "LastOrDefault": lambda s, p=None: _first(s, p, None, last=True),
    "Single": lambda s, p=None: _single(s, p),
    "SingleOrDefault": lambda s, p=None: _single(s, p, None),
    "ElementAt": lambda s, i: _items(s)[i],
    "ElementAtOrDefault": lambda s, i: (_items(s)[i : i + 1] or [None])[0],
    "Count": lambda s, p=None: len(_where(s, p) if p else _items(s)),
    "LongCount": lambda s, p=None: len(_where(s, p) if p else _items(s)),
    "Contains": _contains,
    "OrderBy": lambda s, k=None: _order(s, k),
    "OrderByDescending": lambda s, k=None: _order(s, k, True),
    "ThenBy": lambda s, k=None: _order(s, k),
    "ThenByDescending": lambda s, k=None: _order(s, k, True),
    "Reverse": lambda s: list(reversed(_items(s))),
    "ToArray": lambda s: list(_items(s)),
    "ToList": lambda s: list(_items(s)),
    "ToDictionary": _to_dict,
    "ToHashSet": _distinct,
    "Skip": lambda s, n: _items(s)[max(n, 0) :],
    "Take": lambda s, n: _items(s)[: max(n, 0)],
    "SkipWhile": lambda s, p: _skip_while(s, p),
    "TakeWhile": lambda s, p: _take_while(s, p),
    "Sum": _sum,
    "Max": lambda s, f=None: _minmax(s, f, 1),
    "Min": lambda s, f=None: _minmax(s, f, -1),
    "Average": lambda s, f=None: (
        float(_sum(s, f)) / len(_items(s))
        if _items(s)
        else (_ for _ in ()).throw(
            cs_error("InvalidOperationException", "Sequence contains no elements")
        )
    ),
    "Distinct": _distinct,
    "Concat": lambda s, o: _items(s) + _items(o),
    "Union": lambda s, o: _distinct(_items(s) + _items(o)),
    "Intersect": lambda s, o: [x for x in _distinct(s) if _contains(o, x)],
    "Except": lambda s, o: [x for x in _distinct(s) if not _contains(o, x)],
    "GroupBy": _group_by,
    "DefaultIfEmpty": lambda s, d=None: _items(s) or [d],
    "SequenceEqual": lambda s, o: (
        len(_items(s)) == len(_items(o))
        and all(equals(a, b) for a, b in zip(_items(s), _items(o), strict=False))
    ),
    "Cast": lambda s, type_arg=None: _items(s),
    "OfType": lambda s, type_arg=None: _of_type(s, type_arg),
    "AsEnumerable": lambda s: s,
    "Aggregate": lambda s, *a: _aggregate(s, *a),
}


def _skip_while(s: object, p: Callable) -> list[object]:
    items = _items(s)
    i = 0
    while i < len(items) and p(items[i]) is True:
        i += 1
    return items[i:]


def _take_while(s: object, p: Callable) -> list[object]:
    out = []
    for x in _items(s):
        if p(x) is not True:
            break
        out.append(x)
    return out


def _aggregate(s: object, *a: object) -> object:
    items = _items(s)
    if len(a) == 1:
        acc, fn = items[0], a[0]
        items = items[1:]
    else:
        acc, fn = a[0], a[1]
    for x in items:
        acc = fn(acc, x)  # type: ignore[operator]
    return acc


def _of_type(s: object, type_arg: str | None) -> list[object]:
    from . import lookup

    t = lookup(type_arg or "object")
    return [x for x in _items(s) if t is None or t.check(x)]


# --- List<T> / arrays ---------------------------------------------------------------------------


def _check_index(lst: list, i: int) -> int:
    if not isinstance(i, int) or i < 0 or i >= len(lst):
        raise cs_error("ArgumentOutOfRangeException", "Index was out of range.")
    return i


def _list_add(lst: list, v: object) -> None:
    check_items(len(lst) + 1)
    lst.append(v)


def _list_remove(lst: list, v: object) -> bool:
    for i, x in enumerate(lst):
        if equals(x, v):
            del lst[i]
            return True
    return False


members(
    list,
    tuple,
    props={"Count": len, "Length": len, "LongLength": len},
    methods={
        "Add": _list_add,
        "AddRange": lambda lst, o: lst.extend(_items(o)),
        "Insert": lambda lst, i, v: lst.insert(i, v),
        "Remove": _list_remove,
        "RemoveAt": lambda lst, i: lst.pop(_check_index(lst, i)) and None,
        "RemoveAll": lambda lst, p: _remove_all(lst, p),
        "Clear": lambda lst: lst.clear(),
        "IndexOf": lambda lst, v: next((i for i, x in enumerate(lst) if equals(x, v)), -1),
        "Contains": _contains,
        "Exists": lambda lst, p: any(p(x) is True for x in lst),
        "Find": lambda lst, p: next((x for x in lst if p(x) is True), None),
        "FindAll": _where,
        "FindIndex": lambda lst, p: next((i for i, x in enumerate(lst) if p(x) is True), -1),
        "ForEach": lambda lst, f: [f(x) for x in list(lst)] and None,
        "Sort": lambda lst, *a: lst.__setitem__(slice(None), _order(lst)),
        "GetRange": lambda lst, i, n: lst[i : i + n],
        "ToString": lambda lst: (
            "System.String[]" if lst and all(isinstance(x, str) for x in lst) else "System.Object[]"
        ),
    },
)


def _remove_all(lst: list, p: Callable) -> int:
    keep = [x for x in lst if p(x) is not True]
    n = len(lst) - len(keep)
    lst[:] = keep
    return n


members(
    bytes,
    bytearray,
    props={"Length": len, "Count": len},
    methods={"ToString": lambda b: "System.Byte[]"},
)


# --- Dictionary<K,V> ----------------------------------------------------------------------------


def _dict_get(d: dict, key: object) -> object:
    try:
        return d[key]
    except KeyError:
        raise cs_error(
            "KeyNotFoundException", f"The given key '{key}' was not present in the dictionary."
        ) from None


def _dict_add(d: dict, k: object, v: object) -> None:
    if k in d:
        raise cs_error("ArgumentException", "An item with the same key has already been added.")
    check_items(len(d) + 1)
    d[k] = v


members(
    dict,
    props={"Count": len, "Keys": lambda d: list(d), "Values": lambda d: list(d.values())},
    methods={
        "Add": _dict_add,
        "ContainsKey": lambda d, k: k in d,
        "ContainsValue": lambda d, v: any(equals(x, v) for x in d.values()),
        "TryGetValue": lambda d, k: (True, d[k]) if k in d else (False, None),
        "GetValueOrDefault": lambda d, k, default=None, type_arg=None: d.get(k, default),
        "Remove": lambda d, k: d.pop(k, _NONE) is not _NONE,
        "Clear": lambda d: d.clear(),
        "TryAdd": lambda d, k, v: False if k in d else d.__setitem__(k, v) or True,
        "ToString": lambda d: "System.Collections.Generic.Dictionary`2",
    },
)


def _new_list(arg: object = None, *_: object) -> list:
    if arg is None or isinstance(arg, int):
        return []
    return list(_items(arg))


def _new_dict(arg: object = None, *_: object) -> dict:
    if isinstance(arg, dict):
        return dict(arg)
    return {}


for _name in ("List", "IList", "IEnumerable", "ICollection", "IReadOnlyList", "HashSet", "ISet"):
    register(CsType(_name, lambda v: isinstance(v, list), new=_new_list))
for _name in ("Dictionary", "IDictionary", "IReadOnlyDictionary", "SortedDictionary"):
    register(CsType(_name, lambda v: isinstance(v, dict), new=_new_dict))
register(CsType("KeyValuePair", lambda v: isinstance(v, KeyValuePair), new=KeyValuePair))
register(CsType("object", lambda v: True, default=None), "Object")
for _name in ("Func", "Action", "Predicate"):
    register(CsType(_name, callable))


def _array_copy(src: list, *a: object) -> None:
    if len(a) == 2:
        dst, n = a
        dst[:n] = src[:n]  # type: ignore[index]
        return
    si, dst, di, n = a
    dst[di : di + n] = src[si : si + n]  # type: ignore[index,operator]


register(
    CsType(
        "Array",
        lambda v: isinstance(v, list | bytes | bytearray),
        static_methods={
            "Copy": _array_copy,
            "Exists": lambda arr, p: any(p(x) is True for x in _items(arr)),
            "IndexOf": lambda arr, v: next(
                (i for i, x in enumerate(_items(arr)) if equals(x, v)), -1
            ),
            "Reverse": lambda arr: arr.reverse(),
            "Sort": lambda arr: arr.__setitem__(slice(None), _order(arr)),
            "Empty": lambda type_arg=None: [],
        },
    )
)


def _range(start: int, count: int) -> list[int]:
    check_items(count)
    return list(range(start, start + count))


def _repeat(value: object, count: int) -> list[object]:
    check_items(count)
    return [value] * count


register(
    CsType(
        "Enumerable",
        lambda v: False,
        static_methods={
            "Range": _range,
            "Repeat": _repeat,
            "Empty": lambda type_arg=None: [],
        },
    )
)

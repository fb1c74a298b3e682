"""Compile level of the APIM corpus: every distinct expression compiles, or its refusal is listed
with its reason in `corpus_refusals.txt` (invalid C#, or a member APIM does not allow).

Prints one line per refused expression and a closing `N passed, N failed`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from certgate.expressions import ExpressionCompileError, compile_expression, find_expressions

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora" / "apim-policies"
REFUSALS = Path(__file__).with_name("corpus_refusals.txt")
CLASSES = {"invalid-csharp", "not-allowed"}
_ENTITY = re.compile(r"&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_REFUSAL = re.compile(r"^(unsupported: .*'[^']+'|syntax error|the name '[^']+' does not exist)")


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e.startswith("#x"):
            return chr(int(e[2:], 16))
        if e.startswith("#"):
            return chr(int(e[1:]))
        return _NAMED[e]

    return _ENTITY.sub(one, text)


@functools.cache
def corpus_expressions() -> dict[str, str]:
    """Distinct expression text -> the first file it appears in."""
    found: dict[str, str] = {}
    for path in sorted(CORPUS.rglob("*.xml")):
        text = path.read_text(encoding="utf-8-sig")
        text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
        # Named values hold plain text; a number keeps expressions that splice one in valid C#.
        text = re.sub(r"\{\{[A-Za-z0-9._-]+\}\}", "1", text)
        for start, end in find_expressions(text):
            found.setdefault(_unescape(text[start:end]), str(path.relative_to(CORPUS)))
    return found


def listed_refusals() -> dict[tuple[str, str, str], str]:
    """(origin, "line:column", message) -> class, from `corpus_refusals.txt`."""
    listed = {}
    for raw in REFUSALS.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        origin, position, message, kind, reason = (f.strip() for f in raw.split(" | ", 4))
        assert kind in CLASSES and reason, raw
        listed[(origin, position, message)] = kind
    return listed


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpora not present")
def test_corpus_expressions_compile() -> None:
    expressions = corpus_expressions()
    assert len(expressions) > 600
    listed = listed_refusals()
    refused: set[tuple[str, str, str]] = set()
    unlisted: list[str] = []
    for source, origin in expressions.items():
        try:
            compile_expression(source)
        except ExpressionCompileError as e:
            first = source.split("\n")[0][:60]
            print(f"FAIL {origin} line {e.line} col {e.column}: {e.message} :: {first}")
            key = (origin, f"{e.line}:{e.column}", e.message)
            refused.add(key)
            if key not in listed or not _REFUSAL.match(e.message):
                unlisted.append(" | ".join(key))
    print(f"{len(expressions) - len(refused)} passed, {len(refused)} refused")
    assert not unlisted, "refusals without a reason in corpus_refusals.txt:\n" + "\n".join(unlisted)
    stale = sorted(" | ".join(k) for k in set(listed) - refused)
    assert not stale, "listed refusals that no longer happen:\n" + "\n".join(stale)

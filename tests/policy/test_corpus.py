"""Conformance over the 296 public APIM policy documents: Load and Vocabulary levels.

Each runner prints its failing cases and a closing `N passed, N failed` (run with `-s` to see them).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from certgate.policy.catalog import PlaceholderCatalog
from certgate.policy.errors import ExpressionValidationError, PolicyValidationError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node, read_document
from certgate.policy.registry import registered_names

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora" / "apim-policies"
BROKEN = "Filter response content based on product name.policy.xml"
SECTIONS = {"inbound", "backend", "outbound", "on-error"}
# Elements whose children are policies (return-response's children are counted with it).
CONTAINERS = SECTIONS | {"fragment", "when", "otherwise", "retry", "limit-concurrency", "wait"}


def corpus_files() -> list[Path]:
    files = sorted(CORPUS.rglob("*.xml"))
    if not files:
        pytest.skip(f"corpus not found at {CORPUS}")
    return files


# Named values are unknown here: try a few placeholders, keep the best outcome per element.
PLACEHOLDERS = ("placeholder", "1", "https://placeholder.example")


def _read(path: Path, placeholder: str = PLACEHOLDERS[0]) -> Node:
    return read_document(path.read_text(encoding="utf-8"), lambda name: placeholder)


def test_load_level() -> None:
    passed, failed = 0, []
    for path in corpus_files():
        try:
            _read(path)
            ok = path.name != BROKEN
            why = "loaded, but its broken comment must be refused"
        except PolicyValidationError as exc:
            ok = path.name == BROKEN and "not well-formed" in str(exc)
            why = str(exc)
        if ok:
            passed += 1
        else:
            failed.append(f"LOAD FAIL {path.relative_to(CORPUS)}: {why}")
    print("\n".join(failed))
    print(f"Load: {passed} passed, {len(failed)} failed")
    assert passed == 296 and not failed


def _policy_nodes(node: Node, section: str, in_container: bool):
    """(node, section) for every element standing where a policy is expected."""
    if in_container:
        yield node, section
    if node.tag in SECTIONS:
        section = node.tag
    for child in node.children:
        yield from _policy_nodes(child, section, node.tag in CONTAINERS)


def _own_error(exc: PolicyValidationError, node: Node) -> bool:
    return (exc.element, exc.line, exc.column) == (node.tag, node.line, node.column)


def _outcome(node: Node, section: str) -> PolicyValidationError | None:
    """None when the element parses (expression compile errors belong to the Compile level)."""
    loader = Loader("api", PlaceholderCatalog())
    loader.section = section
    try:
        loader.policy(node)
    except ExpressionValidationError:
        return None
    except PolicyValidationError as exc:
        return exc if _own_error(exc, node) else None
    return None


def test_vocabulary_level() -> None:
    """Every element is executed (registered, validated) or refused by an error naming it."""
    executed_names = registered_names()
    passed, failed, notes = 0, [], []
    executed: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for path in corpus_files():
        if path.name == BROKEN:
            continue
        text = path.read_text(encoding="utf-8")
        variants = [_read(path, p) for p in (PLACEHOLDERS if "{{" in text else PLACEHOLDERS[:1])]
        walks = [list(_policy_nodes(tree, "", False)) for tree in variants]
        for index, (node, _section) in enumerate(walks[0]):
            errors = [_outcome(*walk[index]) for walk in walks]
            error = None if None in errors else errors[0]
            where = f"{path.name}:{node.line}: <{node.tag}>"
            if error is None and node.tag in executed_names:
                executed[node.tag] += 1
            elif error is not None and f"'{node.tag}'" in str(error):
                refused[node.tag] += 1
                if node.tag in executed_names:
                    notes.append(f"refused {where}: {error.reason}")
            else:
                failed.append(f"VOCABULARY FAIL {where} neither executed nor refused by name")
                continue
            passed += 1
    total = sum(executed.values()) + sum(refused.values())
    print("\n".join(notes + failed))
    print(f"refused kinds: {', '.join(sorted(set(refused) - executed_names))}")
    refused_kinds = len(set(refused) - executed_names)
    print(
        f"Vocabulary: {sum(executed.values())} of {total} occurrences executed "
        f"({100 * sum(executed.values()) / max(total, 1):.1f} %), "
        f"{len(executed)} kinds executed, {refused_kinds} kinds refused by name"
    )
    print(f"Vocabulary: {passed} passed, {len(failed)} failed")
    assert not failed

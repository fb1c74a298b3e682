"""The package layering of docs/architecture.md (Layers), checked on every import statement.

Each certgate module is parsed (not imported) and every `import` in it counts, inside functions
and `if TYPE_CHECKING:` blocks too: a deferred import is still a dependency. Adding an import that
a rule forbids fails here, naming the file, the line and the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "certgate"

# package -> the packages its modules must not import (a package is the first name under
# `certgate`: `certgate.gateway.upstream.pool` is in `gateway`, `certgate.serve` in `serve`).
# Nothing in the table imports the entry points; see docs/architecture.md, Layers.
ENTRY_POINTS = {"serve", "cli", "apiops", "client"}
PACKAGES = {"certs", "config", "expressions", "gateway", "management", "observe", "policy"}
PACKAGES |= {"snapshot", "ui"}
FORBIDDEN: dict[str, set[str]] = {
    "limits": ENTRY_POINTS | PACKAGES,
    "httpsyntax": ENTRY_POINTS | PACKAGES,
    "headerkinds": ENTRY_POINTS | PACKAGES,
    "armnames": ENTRY_POINTS | PACKAGES,
    "config": ENTRY_POINTS | PACKAGES - {"certs", "config"},
    "certs": ENTRY_POINTS | {"config", "gateway", "policy", "management", "snapshot", "ui"},
    "expressions": ENTRY_POINTS | {"config", "gateway", "policy", "management", "snapshot", "ui"},
    "policy": ENTRY_POINTS | {"config", "management", "snapshot", "ui"},
    "gateway": ENTRY_POINTS | {"config", "management", "snapshot", "ui"},
    "observe": ENTRY_POINTS | {"gateway", "management", "snapshot", "ui"},
    "management": ENTRY_POINTS | {"snapshot"},
    "snapshot": ENTRY_POINTS | {"ui"},
}


def package_of(module: str) -> str:
    """`certgate.gateway.upstream.pool` -> `gateway`; `certgate` itself -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, target] if target else base)
            found.append((node.lineno, target))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of `module` (with this source) that its package's rule forbids."""
    forbidden = FORBIDDEN.get(package_of(module), set())
    return [
        f"{module}:{line} imports {target} ({package_of(module)}/ must not import "
        f"{package_of(target)}/)"
        for line, target in imported_modules(source, module, is_package)
        if target.split(".")[0] == "certgate" and package_of(target) in forbidden
    ]


def test_no_module_imports_across_a_forbidden_layer() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        found += violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert found == [], "\n".join(found)


def test_every_rule_names_packages_that_exist() -> None:
    """A rule about a renamed or removed package would pass without checking anything."""
    present = {
        path.stem if path.is_file() else path.name
        for path in ROOT.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists()) or path.suffix == ".py"
    }
    named = set(FORBIDDEN) | {package for rule in FORBIDDEN.values() for package in rule}
    assert named <= present, sorted(named - present)


@pytest.mark.parametrize(
    ("source", "module", "is_package"),
    [
        ("from certgate.gateway.config import GatewayConfig\n", "certgate.config.store", False),
        ("def f():\n    import certgate.management.kinds\n", "certgate.certs.crl", False),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from certgate.snapshot.compiler import SnapshotBuilder\n",
            "certgate.management.app",
            False,
        ),
        ("from ..policy import context\n", "certgate.config.store", False),
        ("from ...management import kinds\n", "certgate.certs.keyvault.vault", False),
        ("from ..snapshot import compiler\n", "certgate.policy", True),
    ],
)
def test_a_forbidden_import_is_found_wherever_it_is_written(source, module, is_package) -> None:
    assert len(violations(source, module, is_package)) == 1


def test_allowed_imports_pass() -> None:
    source = "from certgate.certs.material import CertificateMaterial\nimport certgate.limits\n"
    assert violations(source, "certgate.config.bootstrap") == []
    assert violations("from . import store\n", "certgate.config.bootstrap") == []

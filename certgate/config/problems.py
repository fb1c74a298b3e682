"""What the Snapshot compiler reports about resources that do not compile (no compiler imports,
so the management API can catch `ConfigurationRejected` without importing the compiler)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CompileProblem:
    """One resource that does not compile: its store path, the property, the reason."""

    path: str
    field: str
    message: str


class ConfigurationRejected(Exception):
    """A write whose resulting configuration has problems the configuration before it had not."""

    def __init__(self, problems: list[CompileProblem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems

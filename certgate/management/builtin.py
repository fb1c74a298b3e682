"""The modules that register certgate's resource kinds; add yours to `KIND_MODULES`."""

from __future__ import annotations

import importlib

KIND_MODULES = (
    "certgate.management.service",
    "certgate.management.certificates",
    "certgate.management.apis",
    "certgate.management.schemas",
    "certgate.management.backends",
    "certgate.management.keyvault",
    "certgate.management.revocation_lists",
    "certgate.management.policies",
    "certgate.management.gateway_credentials",
    "certgate.management.caches",
    "certgate.management.gateways",
)


def load() -> None:
    """Imports every kind module once (each registers its kinds into `kinds.registry`)."""
    for module in KIND_MODULES:
        importlib.import_module(module)

"""The management API: ARM-shaped REST over the configuration store."""

from certgate.management.app import create_management_app

__all__ = ["create_management_app"]

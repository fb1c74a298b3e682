"""The admin web page, served under `/ui` by the management API's port (docs/ui.md)."""

from certgate.ui.routes import ui_routes

__all__ = ["ui_routes"]

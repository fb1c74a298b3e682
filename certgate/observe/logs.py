"""One log format for the supervisor and every gateway worker: time, level, logger, process."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(processName)s %(process)d] %(message)s"


def configure_logging(level: str) -> None:
    """Called first thing in the supervisor and in each spawned worker (a spawned process starts
    with no logging configuration of its own)."""
    logging.basicConfig(level=level.upper(), format=FORMAT, force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)

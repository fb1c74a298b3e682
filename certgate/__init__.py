"""certgate: an API gateway whose first-class feature is mutual TLS in both directions."""

__version__ = "0.1.0"

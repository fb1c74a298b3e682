"""Observability: the access log, Prometheus metrics, the certificate inventory, expiry warnings.

See docs/observability.md for what an operator sees and how to scrape it.
"""

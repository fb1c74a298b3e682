"""Store -> data plane: the Snapshot compiler (`compiler.py`) and the worker that follows the store
revision with it (`follower.py`). This package sits above config/, certs/, policy/, gateway/ and
the management kinds, and nothing below it imports it (docs/architecture.md, Layers)."""

"""Configuration: the store, sealing of secrets, migrations and Snapshot compilation."""

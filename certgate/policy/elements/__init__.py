"""Policy element classes, one module per family; every module here registers on import."""

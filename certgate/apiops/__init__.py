"""APIOps artifacts: the folder Azure/apiops's extractor writes and its publisher reads.

`layout` reads and writes the folder (`Artifacts`), `sync` exports a running certgate into it and
plans/applies an import through the management API (`certgate import|export apiops DIR`).
"""

"""APIM-compatible policy documents: loading (`loader.parse_document`), the pipeline
(`engine.compile_pipeline`, `Pipeline.run`), the `context` object model (`context`), and one
module per element family in `elements/`."""

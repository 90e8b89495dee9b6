"""Serving: the handler behind scripts/inference.py (`handler`) and the SageMaker-compatible model
server that runs it locally (`server`). Pure torch + Pillow, no AWS imports; `limits` imports nothing,
so the CLI reads the serving defaults without loading any of it."""

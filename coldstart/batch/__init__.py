"""Batch pipelines that can run beyond one process (`--engine ray`): see docs/scale.md."""

__all__: list[str] = []

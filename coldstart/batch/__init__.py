"""Batch jobs over the store: scoring creator uploads (locally, or on Ray Data with
`--engine ray`: see docs/scale.md) and the offline evaluation report."""

__all__: list[str] = []

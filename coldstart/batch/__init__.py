"""Batch jobs over the store: scoring creator uploads."""

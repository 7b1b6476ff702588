"""Batch jobs over the store: scoring creator uploads, the offline evaluation report."""

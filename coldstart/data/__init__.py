"""The data contract and everything that brings data into the store (ingest, importers)."""

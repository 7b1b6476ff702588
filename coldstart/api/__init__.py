"""The HTTP API (FastAPI): onboarding, uploads, content queries, health and metrics."""

from coldstart.api.app import create_app

__all__ = ["create_app"]

"""`coldstart` console script. Each module below registers its commands on `app`."""

from coldstart.cli.app import app
from coldstart.cli import data  # noqa: F401  (config, stats, ingest, import)
from coldstart.cli import demo  # noqa: F401  (demo)

__all__ = ["app", "main"]


def main() -> None:
    app()

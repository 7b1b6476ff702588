"""`coldstart` console script. Each module below registers its commands on `app`."""

from coldstart.cli.app import app
from coldstart.cli import data  # noqa: F401  (config, stats, ingest, import)
from coldstart.cli import demo  # noqa: F401  (demo)
from coldstart.cli import index  # noqa: F401  (index, search, similar)
from coldstart.cli import transcribe  # noqa: F401  (transcribe)
from coldstart.cli import serve  # noqa: F401  (serve, score-uploads, recommend)
from coldstart.cli import evaluate  # noqa: F401  (evaluate, train)
from coldstart.cli import two_tower  # noqa: F401  (train-two-tower)

__all__ = ["app", "main"]


def main() -> None:
    app()

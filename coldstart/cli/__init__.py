"""`coldstart` console script. Each module below registers its commands on `app`."""

from coldstart.cli import (
    data,  # noqa: F401  (config, stats, ingest, import)
    demo,  # noqa: F401  (demo)
    evaluate,  # noqa: F401  (evaluate, train)
    index,  # noqa: F401  (index, search, similar)
    serve,  # noqa: F401  (serve, score-uploads, recommend)
    transcribe,  # noqa: F401  (transcribe)
    two_tower,  # noqa: F401  (train-two-tower)
    upload_eval,  # noqa: F401  (evaluate-uploads)
)
from coldstart.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()

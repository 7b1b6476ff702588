"""The demo: build the world, load it, then run every pipeline stage in order.

Each stage is a function of one `DemoContext`, listed in `STAGES`. A stage prints
what a user of that stage would want to see, and returns nothing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from coldstart.content.embeddings import load_encoder
from coldstart.content.index import index_content
from coldstart.content.search import SearchService
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.ingest import ingest_dataset
from coldstart.demo.audiobooks import stage_audiobooks as audiobooks
from coldstart.demo.stages import podcast_stage, transcribe_stage
from coldstart.demo.world import ASSETS, World, WorldConfig, build_world, write_world

__all__ = ["DemoContext", "STAGES", "run_demo"]


@dataclass
class DemoContext:
    settings: Settings
    store: Store
    console: Console
    config: WorldConfig
    world: World | None = None
    results: dict = field(default_factory=dict)  # what stages hand to later stages


def stage_world(ctx: DemoContext) -> None:
    ctx.world = build_world(ctx.config)
    dataset = ctx.settings.home / "demo-dataset"
    digest = write_world(ctx.world, dataset)
    audio_dir = ctx.settings.home / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    for clip in ASSETS.glob("*.ogg"):
        shutil.copy2(clip, audio_dir / clip.name)
    ctx.results["dataset"] = dataset
    ctx.console.print(f"world seed={ctx.config.seed} written to {dataset} (sha256 {digest[:12]})")


def stage_ingest(ctx: DemoContext) -> None:
    report = ingest_dataset(ctx.store, ctx.results["dataset"])
    table = Table("table", "inserted", "updated", "unchanged", title="ingest")
    for name, counts in report.tables.items():
        table.add_row(name, *(str(counts.get(k, "")) for k in ("inserted", "updated", "unchanged")))
    ctx.console.print(table)
    stats = ctx.store.stats()
    langs = stats["items"]["by_language"]
    summary = Table("kind", "items", "languages", "interactions", "listeners", title="catalog")
    for kind, n in sorted(stats["items"]["by_kind"].items()):
        summary.add_row(
            kind,
            str(n),
            ", ".join(f"{k}:{v}" for k, v in sorted(langs.get(kind, {}).items())),
            str(stats["interactions"]["by_kind"].get(kind, 0)),
            str(stats["interactions"]["users_by_kind"].get(kind, 0)),
        )
    ctx.console.print(summary)


def stage_transcribe(ctx: DemoContext) -> None:
    transcribe_stage(ctx.store, ctx.settings, ctx.console)


def stage_embed_index(ctx: DemoContext) -> None:
    encoder = load_encoder(ctx.settings)
    report, syncs = index_content(ctx.store, ctx.settings, encoder=encoder)
    r = report.to_dict()
    ctx.console.print(
        f"{encoder.model_id}: embedded {r['embedded']} texts ({r['texts_per_second']}/s), "
        f"unchanged {r['unchanged']}, items without text {r['items_without_text']}; indexes: "
        + ", ".join(f"{s.unit} {s.manifest['index_type']} x{s.manifest['count']}" for s in syncs)
    )
    service = SearchService(ctx.store, ctx.settings, encoder)
    ctx.results["search"] = service
    for query, kw in (
        ("a detective solving a murder case", {"kind": "episode"}),
        ("historia de imperios antiguos", {"language": "es"}),
    ):
        table = Table(title=f"search {query!r} {kw}")
        for name in ("#", "item", "score", "start"):
            table.add_column(name, no_wrap=True)
        table.add_column("title", ratio=1)
        table.add_column("snippet", ratio=2)
        for rank, hit in enumerate(service.search(query, k=5, **kw), start=1):
            start = "" if hit.start is None else f"{hit.start:.0f}s"
            snippet = (hit.snippet or "")[:60]
            table.add_row(str(rank), hit.item_id, f"{hit.score:.3f}", start, hit.title, snippet)
        ctx.console.print(table)


def stage_podcast_evaluation(ctx: DemoContext) -> None:
    podcast_stage(ctx)


def stage_audiobooks(ctx: DemoContext) -> None:
    audiobooks(ctx)


def stage_serving(ctx: DemoContext) -> None:
    # Imported here: it starts the API, which needs the optional `serve` extra (FastAPI).
    from coldstart.demo.serving import stage_serving as serving

    serving(ctx)


STAGES: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("Build the demo world", stage_world),
    ("Ingest it into the store", stage_ingest),
    ("Transcribe pending episodes (Whisper, offline)", stage_transcribe),
    ("Embed and index the catalog; content search", stage_embed_index),
    ("Podcasts for cold listeners: music taste -> affinity MLP", stage_podcast_evaluation),
    ("Audiobooks for cold listeners: two-tower (GNN off by default)", stage_audiobooks),
    ("Serve: onboarding, a scored upload, a content query", stage_serving),
]


def run_demo(
    settings: Settings, config: WorldConfig, console: Console | None = None
) -> DemoContext:
    console = console or Console()
    ctx = DemoContext(
        settings=settings, store=Store.from_settings(settings), console=console, config=config
    )
    started = time.perf_counter()
    for number, (title, stage) in enumerate(STAGES, start=1):
        console.print(Rule(f"[bold]{number}. {title}"))
        t0 = time.perf_counter()
        stage(ctx)
        console.print(f"[dim]{title}: {time.perf_counter() - t0:.1f}s[/]")
    console.print(Rule(f"[bold green]demo finished in {time.perf_counter() - started:.1f}s"))
    return ctx

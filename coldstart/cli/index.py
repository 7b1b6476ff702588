"""Content commands: index, search, similar."""

from __future__ import annotations

import typer
from rich.table import Table

from coldstart.cli.app import app, console, emit_json, fail, settings_of, store_of


@app.command()
def index(
    ctx: typer.Context,
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Rebuild the faiss indexes from scratch."
    ),
    adapt: bool = typer.Option(
        False,
        "--adapt",
        help="Retrain the adapted encoder on the current catalogue (needs embed.adapt on).",
    ),
    json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    engine: str = typer.Option(
        "local", "--engine", help="local (this process) or ray (Ray Data, docs/scale.md)."
    ),
    address: str = typer.Option(
        None, "--address", help="--engine ray: a Ray cluster (auto, ray://head:10001)."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="--engine ray: embedding actors."),
) -> None:
    """Embed every show, episode and audiobook not yet embedded; build or update the indexes.

    With `embed.adapt` on, the encoder is first adapted to the catalogue (once per home, or
    again with --adapt). The query-intent classifier is retrained on every run.
    """
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.content.embeddings import current_adapted, resolve_model_path
    from coldstart.content.index import index_content

    settings, store = settings_of(ctx), store_of(ctx)
    try:
        resolve_model_path(settings.embed.model)
    except FileNotFoundError as exc:
        fail(str(exc))
        return
    if engine not in ("local", "ray"):
        fail(f"unknown engine {engine!r}: choose local or ray")
    if engine == "ray":  # embed on Ray first; the local pass below then finds every text unchanged
        # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
        from coldstart.batch.ray_engine import RayUnavailable, embed_catalogue_ray

        if settings.embed.adapt and (adapt or current_adapted(settings) is None):
            fail(
                "--engine ray embeds with the current encoder: run `coldstart index --adapt` locally first"
            )
        try:
            embed_catalogue_ray(store, settings, address=address, workers=workers)
        except RayUnavailable as exc:
            fail(str(exc))
    report, syncs = index_content(
        store, settings, rebuild=rebuild, adapt=adapt, progress=None if not json else False
    )
    if json:
        emit_json({"embed": report.to_dict(), "indexes": [s.to_dict() for s in syncs]})
        return
    data = report.to_dict()
    console.print(
        f"model [bold]{data['model_id']}[/]: {data['items']} items, {data['units']} text units; "
        f"embedded {data['embedded']} ({data['texts_per_second']} texts/s), unchanged {data['unchanged']}, "
        f"removed {data['removed']}, items without text {data['items_without_text']}"
    )
    for step in ("adapt", "intent", "lexical"):
        if data.get(step):
            details = ", ".join(f"{k} {v}" for k, v in data[step].items())
            console.print(f"{step}: {details}")
    table = Table(
        "index",
        "action",
        "type",
        "vectors",
        "added",
        "replaced",
        "removed",
        "recall@10",
        title="indexes",
    )
    for s in syncs:
        d = s.to_dict()
        table.add_row(
            d["unit"],
            d["action"],
            d.get("index_type", ""),
            str(d.get("count", "")),
            str(d["added"]),
            str(d["replaced"]),
            str(d["removed"]),
            str(d.get("recall_at_10", "exact")),
        )
    console.print(table)


def _service(ctx: typer.Context):
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.content.index import VectorIndexError
    from coldstart.content.search import SearchService

    try:
        return SearchService(store_of(ctx), settings_of(ctx))
    except (VectorIndexError, FileNotFoundError) as exc:
        fail(str(exc))


def _print(results, title: str) -> None:
    table = Table(title=title)
    for name in ("#", "item", "kind", "score", "start", "end"):
        table.add_column(name, no_wrap=True)
    table.add_column("title", ratio=1)
    table.add_column("snippet", ratio=2)
    for rank, r in enumerate(results, start=1):
        start, end = (
            "" if x is None else f"{int(x // 60)}:{x % 60:04.1f}" for x in (r.start, r.end)
        )
        snippet = r.snippet or ""
        snippet = snippet if len(snippet) <= 80 else snippet[:79].rsplit(" ", 1)[0] + "…"
        table.add_row(str(rank), r.item_id, r.kind, f"{r.score:.3f}", start, end, r.title, snippet)
    console.print(table)


def _json_rows(results) -> list[dict]:
    return [
        {
            "item_id": r.item_id,
            "kind": r.kind,
            "title": r.title,
            "score": r.score,
            "snippet": r.snippet,
            "start": r.start,
            "end": r.end,
            **({"passage": r.passage} if r.passage is not None else {}),
        }
        for r in results
    ]


@app.command()
def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="Natural-language query."),
    k: int = typer.Option(10, "--k", min=1, help="Number of results."),
    kind: str = typer.Option(None, "--kind", help="show | episode | audiobook"),
    language: str = typer.Option(None, "--language", help="ISO 639-1 code, e.g. en"),
    genre: str = typer.Option(None, "--genre", help="Genre (case-insensitive)."),
    mode: str = typer.Option(
        None,
        "--mode",
        help="dense | lexical | hybrid | intent | fused | gated (default: settings.embed.search_mode)",
    ),
    passages: bool = typer.Option(
        False,
        "--passages",
        help="Return transcript passages (episode, text, start and end seconds), not items.",
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Search shows, episodes and audiobooks by content; episodes come with a timed snippet.
    With --passages: the transcript passages that answer the query, with their timestamps."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.content.search import EmptyQueryError

    service = _service(ctx)
    try:
        if passages:
            if kind not in (None, "episode") or mode is not None:
                raise ValueError("--passages searches episode transcripts: no --kind or --mode")
            results = service.search_passages(query, k=k, language=language, genre=genre)
        else:
            results = service.search(
                query, k=k, kind=kind, language=language, genre=genre, mode=mode
            )
    except (EmptyQueryError, ValueError) as exc:
        fail(str(exc), code=2)
        return
    if json:
        emit_json(_json_rows(results))
    else:
        _print(results, f"search: {query!r}")


@app.command()
def similar(
    ctx: typer.Context,
    item_id: str = typer.Argument(..., help="A show, episode or audiobook id."),
    k: int = typer.Option(10, "--k", min=1, help="Number of results."),
    kind: str = typer.Option(
        None,
        "--kind",
        help="Kind of results: show | episode | audiobook | any (default: same kind).",
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Items whose content is most like ITEM_ID's."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.content.search import NoContentVectorError, UnknownItemError

    service = _service(ctx)
    try:
        results = service.similar(item_id, k=k, kind=kind)
    except (UnknownItemError, NoContentVectorError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc), code=2)
        return
    if json:
        emit_json(_json_rows(results))
    else:
        _print(results, f"similar to {item_id}")

"""The demo's serving stage: the three users of the API, over real HTTP.

1. a new listener gets onboarding recommendations from their music alone;
2. a creator uploads an episode (a shipped clip), the batch scores it, and its
   status shows the predicted audience;
3. a content query finds the new episode.
"""

from __future__ import annotations

import httpx
import numpy as np
from rich.table import Table

from coldstart.api.server import serve_in_thread
from coldstart.artifacts.training import train_model
from coldstart.batch.upload_pipeline import score_uploads
from coldstart.batch.uploads import affinity_artifact
from coldstart.demo.world import ASSETS, AUDIO_CLIPS

__all__ = ["stage_serving"]

CLIP_QUERIES = {
    "history": "ancient Rome emperors and the fall of the empire",
    "science": "black holes and the physics of stars",
    "technology": "artificial intelligence and software",
    "truecrime": "detective murder investigation",
}


def _sample_listener(ctx):
    """A listener with a clear taste, from the world's latent truth (if the demo built it)."""
    store = ctx.store
    users = store.users().set_index("user_id")
    inter = store.interactions().merge(store.items()[["item_id", "kind"]], on="item_id")
    music = inter[inter["kind"].isin(["artist", "track"])]
    if ctx.world is not None and ctx.world.taste is not None:
        strongest = int(np.argmax(ctx.world.taste.max(axis=1)))
        user_id = f"u{strongest:05d}"
        expected = ctx.world.spoken_of_cluster[int(np.argmax(ctx.world.taste[strongest]))]
    else:
        user_id, expected = music["user_id"].iloc[0], None
    rows = music[music["user_id"] == user_id]
    user = users.loc[user_id]
    body = {
        "music": [{"item_id": r.item_id, "weight": float(r.weight)} for r in rows.itertuples()],
        "country": user["country"],
        "language": user["language"],
        "age": float(user["age"]) if user["age"] == user["age"] else None,
        "k": 5,
    }
    return user_id, expected, body


def _table(title: str, entries: list[dict]) -> Table:
    table = Table("#", "item", "title", "score", "reasons", title=title)
    for n, entry in enumerate(entries, start=1):
        table.add_row(
            str(n),
            entry["item_id"],
            entry["title"] or "",
            f"{entry['score']:.3f}",
            ", ".join(entry["reasons"]),
        )
    return table


def _clip_and_show(store):
    """A shipped clip and an English show of the genre the clip talks about."""
    shows = store.items(["show"])
    for clip, genre in AUDIO_CLIPS.items():
        match = shows[(shows["genre"] == genre) & (shows["language"] == "en")]
        if len(match):
            return clip, match.iloc[0]
    return "history", shows.iloc[0]


def _ensure_affinity(ctx) -> None:
    """Upload scoring needs the podcast affinity model; train it if no stage did."""
    if affinity_artifact(ctx.store) is None:
        ctx.console.print(
            "no podcast affinity model registered yet: training one (as `coldstart train` does)"
        )
        train_model(ctx.store, ctx.settings, "affinity", "podcast")


def stage_serving(ctx) -> None:
    console, store, settings = ctx.console, ctx.store, ctx.settings
    user_id, expected, body = _sample_listener(ctx)
    clip, show = _clip_and_show(store)
    settings.uploads_path.mkdir(parents=True, exist_ok=True)
    _ensure_affinity(ctx)
    with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=120) as http:
        health = http.get("/healthz").json()
        console.print(
            f"API on {url} (OpenAPI at {url}/docs); loaded: {', '.join(health['components']) or 'popularity only'}"
        )
        for name, error in health["errors"].items():
            console.print(f"[yellow]not loaded[/] {name}: {error}")

        # 1. a new listener: music only
        answer = http.post("/v1/onboarding", json=body).json()
        hint = f"; their strongest latent taste leans to {expected!r}" if expected else ""
        console.print(
            f"[bold]New listener[/] (music of {user_id}: {len(body['music'])} artists/tracks, "
            f"{body['country']}/{body['language']}{hint}); fallback={answer['fallback']}"
        )
        for name in ("shows", "episodes", "audiobooks"):
            console.print(_table(f"onboarding: {name}", answer[name]))

        # 2. a creator uploads an episode; the batch scores it
        with (ASSETS / f"{clip}.ogg").open("rb") as audio:
            created = http.post(
                "/v1/uploads",
                data={
                    "show_id": show["item_id"],
                    "title": f"New episode: {clip}",
                    "description": CLIP_QUERIES[clip],
                },
                files={"file": (f"{clip}.ogg", audio, "audio/ogg")},
                headers=_auth(settings),
            )
        created.raise_for_status()
        upload = created.json()
        console.print(
            f"[bold]Upload[/] {upload['upload_id']} to {show['item_id']} ({show['title']!r}): {upload['status']}"
        )
        report = score_uploads(store, settings, [upload["upload_id"]], progress=False)
        status = http.get(f"/v1/uploads/{upload['upload_id']}", headers=_auth(settings)).json()
        if status["status"] != "scored":
            console.print(f"[red]upload not scored[/]: {status['error'] or report.failed}")
        else:
            audience = status["audience"]
            console.print(
                f"scored ({audience['method']}): about {audience['expected_listeners']:.0f} of "
                f"{audience['listeners_scored']} known listeners expected to play it "
                f"({audience['picks_per_listener']:.1f} shows each); in {audience['in_top_k']} listeners' "
                f"top {audience['top_k']}; per-listener table: {settings.home / 'audiences' / (upload['upload_id'] + '.parquet')}"
            )
            segs = Table(
                "country",
                "language",
                "expected listeners",
                "in top k",
                "scored",
                title="predicted audience by segment",
            )
            for seg in audience["segments"][:6]:
                segs.add_row(
                    seg["country"],
                    seg["language"],
                    f"{seg['expected_listeners']:.1f}",
                    str(seg["in_top_k"]),
                    str(seg["listeners_scored"]),
                )
            console.print(segs)
            console.print(
                "most likely listeners: "
                + ", ".join(
                    f"{u['user_id']} (p={u['probability']:.3f})" for u in audience["top_users"][:5]
                )
            )

        # 3. a content query (the server reloads the catalog and index by itself)
        http.post("/v1/admin/reload", headers=_auth(settings))
        hits = http.get("/v1/search", params={"q": CLIP_QUERIES[clip], "k": 5})
        if hits.status_code == 200:
            table = Table(
                "#",
                "item",
                "kind",
                "title",
                "score",
                "snippet",
                title=f"search {CLIP_QUERIES[clip]!r}",
            )
            for n, hit in enumerate(hits.json()["results"], start=1):
                table.add_row(
                    str(n),
                    hit["item_id"],
                    hit["kind"],
                    hit["title"],
                    f"{hit['score']:.3f}",
                    (hit["snippet"] or "")[:60],
                )
            console.print(table)
        else:
            console.print(f"[yellow]search unavailable[/]: {hits.json().get('detail')}")
    ctx.results["upload"] = status
    ctx.results["onboarding"] = answer


def _auth(settings) -> dict:
    token = settings.api_token
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}

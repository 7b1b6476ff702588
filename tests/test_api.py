"""The HTTP API, over real HTTP: uvicorn in a thread, httpx as the client."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import serving_world
from pydantic import SecretStr

from coldstart.core.config import ServeSettings, Settings
from coldstart.core.store import Store

TOKEN = "s3cret-token"
LIMIT = 200_000


@pytest.fixture(scope="session")
def served_home(tmp_path_factory):
    return serving_world.build(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def api(served_home):
    settings = Settings(
        home=served_home,
        api_token=SecretStr(TOKEN),
        serve=ServeSettings(max_upload_bytes=LIMIT, reload_check_seconds=0.2),
    )
    with serving_world.served(settings) as client:
        yield client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def listener(home, language: str):
    """A demo listener of `language` with podcast history: (music body, their shows)."""
    store = Store(Settings(home=home).db_url)
    inter = store.interactions().merge(store.items()[["item_id", "kind", "show_id"]], on="item_id")
    users = store.users().set_index("user_id")
    for user_id, group in inter.groupby("user_id"):
        if users.at[user_id, "language"] != language or not (group["kind"] == "episode").any():
            continue
        music = group[group["kind"].isin(["artist", "track"])]
        body = [{"item_id": r.item_id, "weight": r.weight} for r in music.itertuples()]
        return body, users.loc[user_id]
    raise AssertionError(f"no {language} listener in the demo world")


def test_onboarding_for_a_demo_listener(api, served_home):
    music, user = listener(served_home, "es")
    resp = api.post(
        "/v1/onboarding",
        json={"music": music, "language": "es", "country": user["country"], "age": 30, "k": 5},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["fallback"] is False and body["unknown_items"] == []
    assert 0 < len(body["shows"]) <= 5 and 0 < len(body["audiobooks"]) <= 5
    for entry in body["shows"] + body["audiobooks"] + body["episodes"]:
        assert entry["title"] and isinstance(entry["score"], float)
        assert entry["language"] == "es" and "rule:language_match" in entry["reasons"]
    assert body["shows"][0]["reasons"][0] == "source:affinity"
    scores = [s["score"] for s in body["shows"]]
    assert scores == sorted(scores, reverse=True)
    show_ids = [s["item_id"] for s in body["shows"]]
    episode_shows = [e["show_id"] for e in body["episodes"]]
    assert set(episode_shows) <= set(show_ids) and len(episode_shows) == len(set(episode_shows))


def test_onboarding_depends_on_taste(api, served_home):
    es_music, _ = listener(served_home, "es")
    en_music, _ = listener(served_home, "en")
    es = api.post("/v1/onboarding", json={"music": es_music, "k": 8}).json()
    en = api.post("/v1/onboarding", json={"music": en_music, "k": 8}).json()
    assert [s["item_id"] for s in es["shows"]] != [s["item_id"] for s in en["shows"]]


def test_empty_history_falls_back_to_popularity(api):
    body = api.post("/v1/onboarding", json={"music": [], "k": 4}).json()
    assert body["fallback"] is True and set(body["fallback_lists"]) == {"shows", "audiobooks"}
    assert len(body["shows"]) == 4
    for entry in body["shows"] + body["audiobooks"]:
        assert entry["reasons"][:2] == ["source:popularity", "fallback:popularity"]


def test_unknown_music_items_are_ignored_and_listed(api, served_home):
    music, _ = listener(served_home, "en")
    known = api.post("/v1/onboarding", json={"music": music, "k": 5}).json()
    mixed = api.post(
        "/v1/onboarding",
        json={"music": music + [{"item_id": "no-such-artist", "weight": 50}], "k": 5},
    ).json()
    assert mixed["unknown_items"] == ["no-such-artist"] and mixed["fallback"] is False
    assert [s["item_id"] for s in mixed["shows"]] == [s["item_id"] for s in known["shows"]]
    only = api.post("/v1/onboarding", json={"music": [{"item_id": "ghost", "weight": 1}]}).json()
    assert only["fallback"] is True and only["unknown_items"] == ["ghost"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"music": [], "k": 0}, "k"),
        ({"music": [], "k": 1000}, "k"),
        ({"music": [], "language": "english"}, "language"),
        ({"music": [{"item_id": "a", "weight": -1}]}, "weight"),
        ({"music": [{"weight": 1}]}, "item_id"),
        ({"music": "artist0001"}, "music"),
        ({"music": [], "age": "old"}, "age"),
        ({"music": [], "favourite": "jazz"}, "favourite"),
    ],
)
def test_invalid_onboarding_bodies_are_422_naming_the_field(api, body, field):
    resp = api.post("/v1/onboarding", json=body)
    assert resp.status_code == 422
    assert field in resp.json()["message"]


def test_malformed_json_is_422(api):
    resp = api.post(
        "/v1/onboarding", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and "message" in resp.json()


def test_write_endpoints_need_the_token(api):
    body = {"show_id": "show000", "title": "t", "audio_path": "science.ogg"}
    assert api.post("/v1/uploads", json=body).status_code == 401
    wrong = api.post("/v1/uploads", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert api.post("/v1/uploads", json=body, headers={"Authorization": TOKEN}).status_code == 401
    assert api.post("/v1/admin/reload").status_code == 401
    # reads stay open
    assert api.get("/healthz").status_code == 200


def test_paths_outside_the_uploads_directory_are_403(api, served_home, tmp_path):
    uploads = Settings(home=served_home).uploads_path
    outside = tmp_path / "secret.ogg"
    outside.write_bytes(b"OggS not yours")
    link = uploads / "escape.ogg"
    if not link.exists():
        os.symlink(outside, link)
    for path in [
        "../coldstart.db",
        "sub/../../coldstart.db",
        str(outside),
        "/etc/passwd",
        "escape.ogg",
    ]:
        resp = api.post(
            "/v1/uploads",
            json={"show_id": "show000", "title": "t", "audio_path": path},
            headers=AUTH,
        )
        assert resp.status_code == 403, (path, resp.text)
    missing = api.post(
        "/v1/uploads",
        json={"show_id": "show000", "title": "t", "audio_path": "nothing.ogg"},
        headers=AUTH,
    )
    assert missing.status_code == 422 and "audio_path" in missing.json()["message"]


def _upload_rows(home) -> int:
    from coldstart.core import tables as t

    return Store(Settings(home=home).db_url).count(t.uploads)


def test_oversize_upload_is_413_and_stores_nothing(api, served_home):
    before = _upload_rows(served_home)
    received = Settings(home=served_home).uploads_path / "received"
    files_before = set(received.glob("*")) if received.exists() else set()
    big = b"\0" * (LIMIT + 100_000)
    form = {"show_id": "show000", "title": "too big"}
    resp = api.post(
        "/v1/uploads", data=form, files={"file": ("big.ogg", big, "audio/ogg")}, headers=AUTH
    )
    assert resp.status_code == 413

    # No Content-Length (chunked): refused while streaming, not after.
    def chunks():
        boundary = b"--xyz"
        yield boundary + b'\r\nContent-Disposition: form-data; name="show_id"\r\n\r\nshow000\r\n'
        yield boundary + b'\r\nContent-Disposition: form-data; name="title"\r\n\r\nstreamed\r\n'
        yield (
            boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.ogg"\r\n\r\n'
        )
        for _ in range(40):
            yield b"\1" * 10_000
        yield b"\r\n--xyz--\r\n"

    resp = api.post(
        "/v1/uploads",
        content=chunks(),
        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert resp.status_code == 413
    # Just over the limit, with the form overhead small: the exact file-size check.
    just = b"\2" * (LIMIT + 1)
    resp = api.post(
        "/v1/uploads", data=form, files={"file": ("just.ogg", just, "audio/ogg")}, headers=AUTH
    )
    assert resp.status_code == 413
    assert _upload_rows(served_home) == before
    assert (set(received.glob("*")) if received.exists() else set()) == files_before


def test_upload_validation_names_the_field(api):
    resp = api.post(
        "/v1/uploads",
        data={"show_id": "no-such-show", "title": "x"},
        files={"file": ("a.ogg", b"OggS", "audio/ogg")},
        headers=AUTH,
    )
    assert resp.status_code == 422 and "show_id" in resp.json()["message"]
    resp = api.post(
        "/v1/uploads",
        data={"show_id": "show000"},
        files={"file": ("a.ogg", b"OggS", "audio/ogg")},
        headers=AUTH,
    )
    assert resp.status_code == 422 and "title" in resp.json()["message"]
    resp = api.post("/v1/uploads", data={"show_id": "show000", "title": "x"}, headers=AUTH)
    assert resp.status_code == 422 and "file" in resp.json()["message"]
    assert api.get("/v1/uploads/does-not-exist", headers=AUTH).status_code == 404
    assert api.get("/v1/uploads/does-not-exist").status_code == 401  # audience data: token first


def test_search_and_similar(api):
    resp = api.get(
        "/v1/search", params={"q": "detective murder investigation", "k": 3, "kind": "episode"}
    )
    assert resp.status_code == 200, resp.text
    hits = resp.json()["results"]
    assert 0 < len(hits) <= 3 and all(h["kind"] == "episode" for h in hits)
    assert hits[0]["genre"] == "true crime"
    sim = api.get("/v1/items/show000/similar", params={"k": 4})
    assert sim.status_code == 200
    results = sim.json()["results"]
    assert len(results) == 4 and all(
        r["kind"] == "show" and r["item_id"] != "show000" for r in results
    )
    assert api.get("/v1/items/nope/similar").status_code == 404
    assert api.get("/v1/search", params={"q": ""}).status_code == 422
    assert api.get("/v1/search", params={"q": "x", "kind": "album"}).status_code == 422


def test_search_passages(api):
    resp = api.get("/v1/search/passages", params={"q": "detective murder investigation", "k": 3})
    assert resp.status_code == 200, resp.text
    hits = resp.json()["results"]
    assert 0 < len(hits) <= 3
    for h in hits:  # a transcript passage of an episode, with where it starts and ends
        assert h["kind"] == "episode" and h["snippet"] and isinstance(h["passage"], int)
        assert 0 <= h["start"] < h["end"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert api.get("/v1/search/passages", params={"q": ""}).status_code == 422


def test_health_metrics_and_docs(api):
    health = api.get("/healthz").json()
    assert health["status"] == "ok" and "affinity:podcast" in health["components"]
    assert health["catalog"]["show"] == serving_world.CONFIG.shows
    api.post("/v1/onboarding", json={"music": []})
    text = api.get("/metrics").text
    assert 'coldstart_requests_total{method="POST",route="/v1/onboarding",status="200"}' in text
    assert (
        'coldstart_request_seconds_bucket{le="0.05",method="POST",route="/v1/onboarding"}' in text
    )
    assert "coldstart_uploads" in text
    docs = api.get("/docs")
    assert docs.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()  # the page works without the internet
    script = api.get("/docs-static/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/onboarding", "/v1/uploads", "/v1/uploads/{upload_id}", "/v1/search"} <= set(paths)
    assert "/v1/search/passages" in paths


def test_admin_reload(api):
    resp = api.post("/v1/admin/reload", headers=AUTH)
    assert resp.status_code == 200 and resp.json()["status"] == "reloaded"
    assert isinstance(pd.Timestamp(resp.json()["loaded_at"], unit="s"), pd.Timestamp)


def test_onboarding_answers_alike_with_and_without_a_declared_length(api, served_home):
    """A body with Content-Length is answered in front of the middleware; a chunked one
    (no declared length) goes through the full stack and FastAPI's route: the same
    answer. Both are counted by the metrics under the route template, 422s too."""
    music, _ = listener(served_home, "en")
    body = json.dumps({"music": music, "k": 4, "language": "en"}).encode()

    def chunks():
        yield body[:10]
        yield body[10:]

    declared = api.post(
        "/v1/onboarding", content=body, headers={"Content-Type": "application/json"}
    )
    streamed = api.post(
        "/v1/onboarding", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == streamed.status_code == 200
    for name in ("shows", "episodes", "audiobooks"):
        assert [i["item_id"] for i in declared.json()[name]] == [
            i["item_id"] for i in streamed.json()[name]
        ]
    assert api.post("/v1/onboarding", json={"music": [], "k": 0}).status_code == 422
    text = api.get("/metrics").text
    assert 'coldstart_requests_total{method="POST",route="/v1/onboarding",status="422"}' in text

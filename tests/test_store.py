"""The store on both back-ends (a SQLite file, a real PostgreSQL server): artifacts,
uploads and the serving fingerprint, beyond what the ingest tests cover."""

from __future__ import annotations

from coldstart.batch.uploads import _set_status, get_upload, list_uploads, register_upload
from coldstart.core import tables as t
from coldstart.core.store import Store, upsert
from coldstart.recommend.loading import store_version


def test_artifacts_uploads_and_version(db_url, tmp_path):
    store = Store(db_url)
    Store(db_url)  # creating the schema twice is harmless
    with store.begin() as conn:
        upsert(
            conn,
            t.items,
            [
                {
                    "item_id": "show1",
                    "kind": "show",
                    "language": "en",
                    "genre": "history",
                    "explicit": True,
                }
            ],
        )
    before = store_version(store)
    manifest = {
        "kind": "affinity",
        "target": "podcast",
        "metrics": {"ndcg": 0.61},
        "nested": [1, {"a": None}],
    }
    store.register_artifact("affinity:podcast", tmp_path / "m", manifest)
    assert store.artifact("affinity:podcast")["manifest"] == manifest
    assert store_version(store) != before

    up = register_upload(store, show_id="show1", title=" A title ", audio_path=tmp_path / "a.ogg")
    assert up["status"] == "pending" and up["title"] == "A title" and up["language"] == "en"
    item = store.items(["episode"]).set_index("item_id").loc[up["item_id"]]
    assert bool(item["explicit"]) and item["genre"] == "history"
    audience = {"expected_listeners": 3.5, "segments": [{"country": "US", "language": "en"}]}
    _set_status(store, up["upload_id"], "scored", audience=audience)
    assert get_upload(store, up["upload_id"])["audience"] == audience
    assert [u["upload_id"] for u in list_uploads(store, ["scored"])] == [up["upload_id"]]
    assert store.stats()["uploads"] == 1

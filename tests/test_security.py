"""Security hardening of the service: tokens, bind address, body caps, what responses
reveal, and the event loop. Over real HTTP (uvicorn in a thread, httpx)."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import serving_world
import torch
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine, event
from typer.testing import CliRunner

from coldstart.api.auth import InsecureBind, check_bind, is_loopback
from coldstart.batch.uploads import register_upload, resolve_upload_path
from coldstart.cli import app
from coldstart.core import tables as t
from coldstart.core.config import ServeSettings, Settings
from coldstart.core.store import Store
from training.threads import pin_process_threads, torch_threads, unpin_process_threads

TOKEN = "another-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)+")


@pytest.fixture(scope="session")
def served_home(tmp_path_factory):
    return serving_world.build(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def settings(served_home):
    return Settings(
        home=served_home, api_token=SecretStr(TOKEN), serve=ServeSettings(reload_check_seconds=0.1)
    )


@pytest.fixture(scope="module")
def api(settings):
    with serving_world.served(settings) as client:
        yield client


# --- 1. an empty token is refused at start-up ------------------------------------------


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_token_is_refused(value, monkeypatch, tmp_path):
    with pytest.raises(ValidationError, match="empty"):
        Settings(api_token=value)
    monkeypatch.setenv("COLDSTART_API_TOKEN", value)
    with pytest.raises(ValidationError, match="empty"):
        Settings()
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "serve", "--port", "70000"])
    assert (
        result.exit_code != 0
        and "COLDSTART_API_TOKEN" in result.output
        and "empty" in result.output
    )


def test_an_empty_token_never_authorises(served_home):
    """Even settings built around validation (model_construct) cannot start a server
    whose empty secret would match `Authorization: Bearer `."""
    from coldstart.api.app import create_app

    broken = Settings.model_construct(
        **{**Settings(home=served_home).__dict__, "api_token": SecretStr("")}
    )
    with pytest.raises(ValueError, match="empty"):
        create_app(broken)


# --- 2. no token: loopback only, unless --insecure ---------------------------------------


def test_non_loopback_bind_without_a_token_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("COLDSTART_API_TOKEN", raising=False)
    open_settings = Settings(home=tmp_path)
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.org"):
        with pytest.raises(InsecureBind, match="--insecure"):
            check_bind(host, open_settings)
        check_bind(host, open_settings, insecure=True)  # explicit opt-out
        check_bind(host, Settings(home=tmp_path, api_token=SecretStr("t0ken")))  # a token: fine
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        check_bind(host, open_settings)
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path), "serve", "--host", "0.0.0.0", "--port", "70000"]
    )
    assert result.exit_code == 1 and "refusing to bind 0.0.0.0" in result.output


# --- 3. JSON bodies are capped while they stream ------------------------------------------


def test_oversize_json_is_413_before_parsing(api):
    big = {"music": [{"item_id": "a" * 150, "weight": 1} for _ in range(9_000)]}  # about 1.5 MB
    raw = json.dumps(big).encode()
    assert len(raw) > 1024 * 1024
    resp = api.post("/v1/onboarding", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and "max_json_bytes" in resp.json()["detail"]

    def chunks():  # no Content-Length: refused while streaming
        yield b'{"music": ['
        for _ in range(300):
            yield b'{"item_id": "' + b"b" * 4000 + b'", "weight": 1},'
        yield b'{"item_id": "c"}]}'

    resp = api.post(
        "/v1/onboarding", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 413
    resp = api.post(
        "/v1/uploads", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413
    # Under the cap nothing changes.
    assert api.post("/v1/onboarding", json={"music": [], "k": 2}).status_code == 200


def test_the_json_cap_is_configurable(served_home):
    small = Settings(home=served_home, serve=ServeSettings(max_json_bytes=200))
    with serving_world.served(small) as client:
        assert client.post("/v1/onboarding", json={"music": [], "k": 2}).status_code == 200
        body = {"music": [{"item_id": f"artist{n:04d}"} for n in range(20)]}
        assert client.post("/v1/onboarding", json=body).status_code == 413


def test_a_client_that_sends_the_whole_body_first_reads_the_413(api):
    """urllib writes the whole body before reading: the server drains it (up to a
    bound) before answering, so the client gets the 413, not a connection reset."""
    import urllib.error
    import urllib.request

    raw = json.dumps({"music": [{"item_id": "a" * 150, "weight": 1}] * 12_000}).encode()
    assert len(raw) > 1024 * 1024
    request = urllib.request.Request(
        f"{api.base_url}/v1/onboarding",
        data=raw,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert "max_json_bytes" in json.loads(refused.value.read())["detail"]


# --- 4. audience data needs the token; no response carries a path ----------------------------


def _strings(data):
    if isinstance(data, dict):
        for key, value in data.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)
    elif isinstance(data, str):
        yield data


def assert_no_paths(data, home):
    for text in _strings(data):
        assert str(home) not in text and not ABSOLUTE_PATH.search(text), text


def test_upload_status_needs_the_token_and_shows_no_path(api, settings):
    store = Store.from_settings(settings)
    shows = store.items(["show"])
    upload = register_upload(
        store,
        show_id=shows["item_id"].iloc[0],
        title="private",
        audio_path=resolve_upload_path(settings, "science.ogg"),
    )
    url = f"/v1/uploads/{upload['upload_id']}"
    try:
        assert api.get(url).status_code == 401
        assert api.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        resp = api.get(url, headers=AUTH)
        assert resp.status_code == 200 and resp.json()["status"] == "pending"
        assert_no_paths(resp.json(), settings.home)
    finally:  # the world is shared by the session: leave no pending upload behind
        with store.begin() as conn:
            conn.execute(t.uploads.delete().where(t.uploads.c.upload_id == upload["upload_id"]))
            conn.execute(t.items.delete().where(t.items.c.item_id == upload["item_id"]))


def test_health_and_reload_show_no_paths(api, settings):
    health = api.get("/healthz")
    assert health.status_code == 200 and "affinity:podcast" in health.json()["components"]
    assert_no_paths(health.json(), settings.home)
    reload = api.post("/v1/admin/reload", headers=AUTH)
    assert reload.status_code == 200
    assert_no_paths(reload.json(), settings.home)


def test_error_messages_lose_their_paths():
    from coldstart.api.routes import public

    data = {
        "error": "FileNotFoundError: '/srv/data/models/two_tower.pt' missing",
        "path": "/srv/x",
        "n": 3,
    }
    assert public(data) == {"error": "FileNotFoundError: '<path>' missing", "n": 3}


# --- 7. the event loop runs no SQL; thread counts are set once ------------------------------


def test_requests_run_no_sql_on_the_event_loop(api):
    """The store-version check runs in a background task's worker thread: requests on
    the event loop never touch the database, however often the check is due."""
    on_loop: list[str] = []

    def record(conn, cursor, statement, *args):
        if threading.current_thread().name == "coldstart-api":  # the uvicorn loop thread
            on_loop.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        deadline = time.monotonic() + 1.0  # ten check intervals
        while time.monotonic() < deadline:
            assert api.post("/v1/onboarding", json={"music": [], "k": 2}).status_code == 200
            time.sleep(0.02)
        checks = api.get("/metrics").status_code
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert checks == 200
    assert on_loop == []


def test_the_version_check_runs_in_the_background(api, settings):
    """A new artifact is picked up with no request asking for it."""
    store = Store.from_settings(settings)
    before = api.get("/healthz").json()["components"]["affinity:podcast"]["created_at"]
    row = store.artifact("affinity:podcast")
    store.register_artifact("affinity:podcast", row["path"], row["manifest"])  # a new version
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.3)  # no requests meanwhile: the watcher alone must notice
        now = api.get("/healthz").json()["components"]["affinity:podcast"]["created_at"]
        if now != before:
            return
    raise AssertionError("the server did not reload the new artifact")


def test_a_pinned_process_ignores_per_call_thread_changes():
    before = torch.get_num_threads()
    pin_process_threads(1)
    try:
        with torch_threads(2):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    finally:
        unpin_process_threads()
        torch.set_num_threads(before)
    with torch_threads(2):
        assert torch.get_num_threads() == 2  # not pinned: the block's setting applies
    assert torch.get_num_threads() == before

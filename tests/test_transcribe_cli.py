"""`coldstart transcribe`: JSON lines per file, failures reported, store batches."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from speech import JFK, JFK_TEXT, sounds_like_jfk
from sqlalchemy import select
from typer.testing import CliRunner

from coldstart.cli import app
from coldstart.core import tables as t
from coldstart.core.config import TranscribeSettings
from coldstart.core.store import Store, upsert
from transcripts.wer import word_error_rate


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "coldstart-home"  # models load once per session


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("COLDSTART_DATABASE_URL", url)
    return url


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_files_as_json_lines_with_failures(home, db_url, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text_file = tmp_path / "readme.mp3"
    text_file.write_text("no audio here " * 50)
    result = run("--home", str(home), "transcribe", str(JFK), str(empty), str(text_file), "--json")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["path"] for r in lines] == [str(JFK), str(empty), str(text_file)]
    ok, bad_empty, bad_text = lines
    assert set(ok) == {"path", "text", "language", "duration", "segments"}
    assert sounds_like_jfk(ok["text"]), ok["text"]
    assert ok["language"] == "en" and ok["duration"] == pytest.approx(11.0)
    assert all(set(s) == {"start", "end", "text"} for s in ok["segments"])
    assert set(bad_empty) == {"path", "error"} and "empty" in bad_empty["error"]
    assert "readme.mp3" in bad_text["error"]


def test_all_good_files_exit_zero_with_human_output(home, db_url):
    result = run("--home", str(home), "transcribe", str(JFK))
    assert result.exit_code == 0
    assert f"faster-whisper/{TranscribeSettings().model}" in result.stdout
    # The transcript alone: the header names the file, whose path (the checkout's
    # location) would otherwise count as words; the segment times are not words either.
    header, _, body = result.stdout.partition("\n")
    assert str(JFK) in header
    transcript = re.sub(r"\[\s*[\d.]+\s*→\s*[\d.]+\]", " ", body)
    assert word_error_rate(JFK_TEXT, transcript) <= 0.35, result.stdout


def test_pending_batch_into_the_store(home, db_url, tmp_path):
    store = Store(db_url)
    shutil.copy(JFK, tmp_path / "ep.flac")
    (tmp_path / "bad.ogg").write_bytes(b"")
    with store.begin() as conn:
        upsert(
            conn,
            t.items,
            [
                {
                    "item_id": "ep",
                    "kind": "episode",
                    "audio_path": str(tmp_path / "ep.flac"),
                    "explicit": False,
                },
                {
                    "item_id": "bad",
                    "kind": "episode",
                    "audio_path": str(tmp_path / "bad.ogg"),
                    "explicit": False,
                },
            ],
        )
    result = run("--home", str(home), "transcribe", "--pending", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["done"] == ["ep"] and list(report["failed"]) == ["bad"]
    with store.connect() as conn:
        assert conn.execute(select(t.transcripts.c.item_id)).scalars().all() == ["ep"]

    # Nothing pending now: the failed item waits for --retry-failed.
    again = json.loads(run("--home", str(home), "transcribe", "--pending", "--json").stdout)
    assert again["done"] == [] and again["failed"] == {}
    retried = run("--home", str(home), "transcribe", "--pending", "--retry-failed", "--json")
    assert json.loads(retried.stdout)["failed"].keys() == {"bad"} and retried.exit_code == 1


def test_needs_exactly_one_source(home, db_url):
    result = CliRunner().invoke(app, ["--home", str(home), "transcribe"])
    assert result.exit_code != 0
    assert "exactly one" in result.stderr


def test_unknown_model_is_a_clear_error(home, db_url):
    result = CliRunner().invoke(
        app, ["--home", str(home), "transcribe", str(JFK), "--model", "huge"]
    )
    assert result.exit_code == 1
    assert "unknown model 'huge'" in result.stderr


def test_decode_options_from_the_command_line(home, db_url):
    # tiny.en batched with pause cuts (the default chunks), batched with VAD chunks, then
    # VAD alone (sequential): the reference words every time.
    for flags in (
        ["--batch-size", "4"],
        ["--vad", "--batch-size", "4"],
        ["--vad", "--batch-size", "0"],
    ):
        result = run(
            "--home", str(home), "transcribe", str(JFK), "--json", "--model", "tiny.en", *flags
        )
        assert result.exit_code == 0, result.stdout
        assert sounds_like_jfk(json.loads(result.stdout)["text"]), (flags, result.stdout)


def test_a_negative_batch_size_is_refused(home, db_url):
    result = CliRunner().invoke(
        app, ["--home", str(home), "transcribe", str(JFK), "--batch-size", "-1"]
    )
    assert result.exit_code != 0

"""benchmarks/scale.py's arithmetic: the context-pair count that explains the taste
stage's growth, and the growth exponents of the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scale  # noqa: E402


def brute_force_contexts(n: int, window: int) -> float:
    """Enumerate every (word, drawn window) and count the context words in reach."""
    total = 0
    for i in range(n):
        for w in range(1, window + 1):
            total += sum(1 for j in range(n) if j != i and abs(i - j) <= w)
    return total / (n * window)


@pytest.mark.parametrize("n,window", [(1, 5), (2, 1), (7, 3), (30, 20), (60, 20)])
def test_contexts_per_word_counts_what_a_skip_gram_window_reaches(n, window):
    assert scale.contexts_per_word(n, window) == pytest.approx(brute_force_contexts(n, window))


def test_contexts_per_word_grows_with_the_sentence_then_saturates():
    short, mid, long = (scale.contexts_per_word(x, 20) for x in (17.5, 44.0, 1000.0))
    assert short < mid < long <= 2 * 10.5  # both sides, mean drawn window (1 + 20) / 2
    assert scale.contexts_per_word(10.5, 20) == pytest.approx(
        (scale.contexts_per_word(10, 20) + scale.contexts_per_word(11, 20)) / 2
    )


def test_report_gives_growth_exponents_and_writes_beside_the_results(tmp_path):
    results = tmp_path / "run.jsonl"
    rows = []
    for n, inter in ((1000, 30_000), (4000, 120_000)):
        size = {"listeners": n, "interactions": inter, "blend": True}
        rows += [
            {**size, "stage": "ingest", "seconds": inter / 1e4, "delta_rss_mb": inter / 1e3},
            # time quadruples when interactions quadruple: exponent 1; memory x16: exponent 2
            {
                **size,
                "stage": "affinity",
                "seconds": inter / 1e3,
                "delta_rss_mb": (inter / 1e4) ** 2,
            },
        ]
    results.write_text(
        "\n".join(json.dumps({"peak_rss_mb": 100 + r["seconds"], **r}) for r in rows) + "\n"
    )
    text = scale.report(results)
    line = next(row for row in text.splitlines() if row.startswith("| affinity |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:3] == ["30.0 s, 9 MB", "120.0 s, 144 MB"]
    assert [float(c) for c in cells[3:]] == [1.0, 2.0, 1.0]
    assert (tmp_path / "run.md").read_text() == text and (tmp_path / "run.png").stat().st_size > 0


def test_stages_run_in_pipeline_order_and_unknown_ones_are_refused():
    assert scale.stages_to_run("taste, ingest", None) == ["ingest", "taste"]
    assert scale.stages_to_run(None, "ingest") == ["generate", "ingest"]
    assert scale.stages_to_run(None, None) == scale.ORDER
    with pytest.raises(SystemExit, match="unknown tasteful"):
        scale.stages_to_run("taste,tasteful", None)


def test_a_size_resumes_from_its_working_directory(tmp_path, monkeypatch):
    """The training stages in a second call (as in a later process) read the world and
    the taste model the first call left, without training taste again."""
    from training import taste as taste_module

    out = tmp_path / "rows.jsonl"
    with pytest.raises(SystemExit, match="run the generate stage first"):
        scale.run_size(1000, 1, out, tmp_path / "w", stages=["ingest"])
    scale.run_size(1000, 1, out, tmp_path / "w", stages=["generate", "ingest", "taste"])
    saved = json.loads((tmp_path / "w" / "taste" / "taste.json").read_text())
    taste_module._CACHE.clear()  # what a new process starts with
    fits = []
    real_fit = taste_module.TasteModel.fit.__func__
    monkeypatch.setattr(
        taste_module.TasteModel,
        "fit",
        classmethod(lambda cls, *a, **k: fits.append(1) or real_fit(cls, *a, **k)),
    )
    scale.run_size(1000, 1, out, tmp_path / "w", stages=["affinity"])
    assert fits == []
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["generate", "ingest", "taste", "affinity"]
    assert (
        rows[2]["epochs"] == saved["epochs"] and rows[2]["trained_words"] == saved["trained_words"]
    )
    assert rows[3]["interactions"] == rows[1]["interactions"] > 0
    assert (tmp_path / "w" / "home" / "artifacts" / "affinity-podcast").exists()


def test_content_vectors_of_some_kinds_are_the_rows_of_every_spoken_item():
    """The training stages hold only show and audiobook vectors, the index all spoken
    items: each item's vector is the same in both (one random stream over all)."""
    items, _, _ = scale.scale_world(300)
    ids, every = scale.content_matrix(items)
    kinds = items.set_index("item_id")["kind"]
    assert set(kinds[ids]) == set(scale.SPOKEN) and len(ids) == kinds.isin(scale.SPOKEN).sum()
    row = {item_id: r for r, item_id in enumerate(ids)}
    for chosen in [scale.TRAINED_KINDS, ("episode",)]:
        some = scale.content_vectors(items, chosen)
        assert len(some) == kinds.isin(chosen).sum()
        for item_id, vector in some.items():
            assert kinds[item_id] in chosen
            assert np.array_equal(vector, every[row[item_id]])

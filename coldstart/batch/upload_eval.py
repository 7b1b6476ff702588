"""`coldstart evaluate-uploads`: the cold-item protocol (`training.upload_protocol`) on
the store, with its report (JSON, Markdown table).

The store gives the catalog of one spoken-word kind (audiobooks, or episodes), the
plays, and each item's text (`coldstart.content.embeddings.item_text`, what `coldstart
index` embeds). Content vectors come from the store where `coldstart index` has run;
items it has not embedded are embedded here, in memory, with the configured encoder
(nothing is written). An upload's group is its author (audiobooks: every name in the
`author` field) or its show (episodes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from coldstart.artifacts.training import content_model_id
from coldstart.content.embeddings import item_text, item_vectors, load_encoder
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.upload_protocol import UploadCatalog, evaluate_uploads

__all__ = ["UPLOAD_KINDS", "load_upload_catalog", "run_upload_evaluation", "uploads_markdown"]

UPLOAD_KINDS = ("audiobook", "episode")
# What an item's text becomes: MiniLM (what `coldstart index` stores and serving uses),
# or LSA (TF-IDF of words and word pairs, 256 SVD dimensions): a lexical stand-in that
# takes seconds where MiniLM over 10k texts takes minutes (hours on a loaded machine).
CONTENT_ENCODERS = ("minilm", "lsa")
LSA_DIMENSIONS = 256
MODEL_LABELS = {
    "random": "random",
    "activity": "activity prior (most active listeners)",
    "group": "same author/show listeners",
    "centroid": "content kNN, centroid",
    "max_sim": "content kNN, max-sim",
    "item_knn": "content item-kNN through plays (50 nearest items)",
    "served": "**served blend (what `score-uploads` writes; chosen on validation uploads)**",
}


def _groups(items: pd.DataFrame, kind: str) -> sparse.csr_matrix:
    """[items x groups]: every author of an audiobook, the show of an episode."""
    if kind == "audiobook":
        names = [
            sorted({a.strip() for a in str(v).split(",") if a.strip()}) if pd.notna(v) else []
            for v in items.get("author", pd.Series([None] * len(items)))
        ]
    else:
        names = [[str(v)] if pd.notna(v) else [] for v in items["show_id"]]
    vocabulary: dict[str, int] = {}
    rows, cols = [], []
    for r, group in enumerate(names):
        for name in group:
            rows.append(r)
            cols.append(vocabulary.setdefault(name, len(vocabulary)))
    return sparse.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(items), max(len(vocabulary), 1))
    )


def lsa_vectors(texts: list[str | None], seed: int = 0) -> np.ndarray:
    """Unit LSA vectors of `texts` (zero rows for no text): TF-IDF (sublinear, words and
    word pairs) reduced to `LSA_DIMENSIONS` by a seeded truncated SVD."""
    # Imported here: scikit-learn's decomposition takes ~7 s to import on this machine
    # (`python -X importtime`), and only the LSA baseline (`--content lsa`) needs it.
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    present = [i for i, text in enumerate(texts) if text]
    out = np.zeros((len(texts), LSA_DIMENSIONS))
    if len(present) < 2:
        return out
    tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1).fit_transform(
        [texts[i] for i in present]
    )
    dims = min(LSA_DIMENSIONS, tfidf.shape[1] - 1, len(present) - 1)
    reduced = TruncatedSVD(dims, random_state=seed).fit_transform(tfidf)
    norms = np.linalg.norm(reduced, axis=1, keepdims=True)
    out[present, :dims] = reduced / np.where(norms > 0, norms, 1.0)
    return out


def load_upload_catalog(
    store: Store,
    settings: Settings,
    kind: str = "audiobook",
    progress=False,
    content: str = "minilm",
):
    """The `training.upload_protocol.UploadCatalog` of one kind from the store."""
    if kind not in UPLOAD_KINDS:
        raise ValueError(f"unknown upload kind {kind!r}; expected one of {', '.join(UPLOAD_KINDS)}")
    items = store.items([kind]).sort_values("item_id").reset_index(drop=True)
    if items.empty:
        raise ValueError(f"the store has no {kind} items (run `coldstart ingest` first)")
    if content not in CONTENT_ENCODERS:
        raise ValueError(
            f"unknown content encoder {content!r}; expected one of {', '.join(CONTENT_ENCODERS)}"
        )
    texts = [item_text(row) for row in items.to_dict("records")]
    words = np.array([len(t.split()) if t else 0 for t in texts])
    plays = store.plays_of([kind], ["user_id", "item_id"])
    groups = _groups(items, kind)
    if content == "lsa":
        return UploadCatalog(items["item_id"].astype(str), lsa_vectors(texts), groups, words, plays)
    model_id = content_model_id(store)
    stored = item_vectors(store, model_id, [kind]) if model_id else {}
    missing = [
        i
        for i, (item, text) in enumerate(zip(items["item_id"], texts))
        if text and item not in stored
    ]
    encoder = load_encoder(settings) if missing or not stored else None
    dim = encoder.dim if encoder is not None else len(next(iter(stored.values())))
    vectors = np.zeros((len(items), dim), np.float64)
    for i, item in enumerate(items["item_id"]):
        if item in stored and len(stored[item]) == dim:
            vectors[i] = stored[item]
    if missing:
        assert encoder is not None  # loaded above whenever a text is missing
        vectors[missing] = encoder.encode([texts[i] or "" for i in missing], progress=progress)
    return UploadCatalog(items["item_id"].astype(str), vectors, groups, words, plays)


def run_upload_evaluation(
    store: Store,
    settings: Settings,
    kind: str = "audiobook",
    seeds=(0, 1, 2),
    hidden_fraction: float = 0.2,
    json_path: Path | None = None,
    progress: bool = False,
    content: str = "minilm",
    jobs: int = 1,
) -> dict:
    catalog = load_upload_catalog(store, settings, kind, progress, content)
    result = evaluate_uploads(catalog, seeds, hidden_fraction, progress=progress, jobs=jobs)
    result["kind"] = kind
    result["content"] = content
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, default=float) + "\n")
        json_path.with_suffix(".md").write_text(uploads_markdown(result))
    return result


def _cell(entry: dict) -> str:
    if entry["mean"] is None:
        return "-"
    return f"{entry['mean']:.3f} ± {entry['se']:.3f}"


def uploads_markdown(result: dict) -> str:
    """The uploads table: per model, mean ± standard error over (item, seed) pairs,
    then the same per cohort, then served minus the best baseline (paired)."""
    models = result["models"]
    ndcg = next(k for k in models["served"] if k.startswith("ndcg@"))
    lines = [
        f"| model | AUC | recall@100 | recall@1% | {ndcg} per listener |",
        "|---|---|---|---|---|",
    ]
    for name, entry in models.items():
        cells = [_cell(entry[m]) for m in ("auc", "recall@100", "recall@1%", ndcg)]
        lines.append(f"| {MODEL_LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    lines += ["", "Per cohort (recall@100; items per cohort over all seeds in brackets):", ""]
    sizes = {c: n for column in result["cohort_items"].values() for c, n in column.items()}
    cohorts = list(sizes)
    lines.append("| model | " + " | ".join(f"{c} ({sizes[c]})" for c in cohorts) + " |")
    lines.append("|---" * (len(cohorts) + 1) + "|")
    for name, entry in models.items():
        cells = [_cell(entry["cohorts"][c]["recall@100"]) for c in cohorts]
        lines.append(f"| {MODEL_LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    lines += ["", "Served minus the best baseline, paired per item (mean ± standard error):", ""]
    for metric, entry in result["served_minus_best_baseline"].items():
        margin = entry["mean"] / entry["se"] if entry["se"] else float("inf")
        lines.append(
            f"* {metric}: {entry['mean']:+.4f} ± {entry['se']:.4f} against "
            f"{entry['best_baseline']} ({margin:.1f} standard errors)"
        )
    return "\n".join(lines) + "\n"

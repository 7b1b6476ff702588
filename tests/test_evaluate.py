"""The cold-start harness: split, metrics, end-to-end CLI, and the quality bar."""

from __future__ import annotations

import json

import numpy as np
import pytest
from recommender_contract import toy_world
from typer.testing import CliRunner

from training.affinity import AffinityConfig, AffinityModel
from training.baselines import MusicKNNRecommender, PopularityRecommender
from training.data import InteractionData
from training.evaluate import default_models, evaluate
from training.metrics import coverage, hit_rate_at_k, mrr_at_k, ndcg_at_k, recall_at_k, summarise
from training.splits import cold_user_split
from training.taste import TasteConfig

TINY = AffinityConfig(
    hidden=32, dim=16, batch_size=32, max_epochs=25, patience=8, taste=TasteConfig(dim=16, epochs=5)
)
TOY_MODELS = {
    "popularity": lambda target, seed: PopularityRecommender(target, seed),
    "music_knn": lambda target, seed: MusicKNNRecommender(
        target, seed, 20, TasteConfig(dim=16, epochs=5, seed=seed)
    ),
    "affinity_mlp": lambda target, seed: AffinityModel(target, seed, TINY),
}

# --- metrics -------------------------------------------------------------------------


def test_metrics_on_a_hand_computed_example():
    ranked, relevant = ["a", "b", "c", "d"], {"b", "d", "z"}
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    assert ndcg_at_k(ranked, relevant, 2) == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert ndcg_at_k(["b", "d", "z"], relevant, 3) == pytest.approx(1.0)
    assert hit_rate_at_k(ranked, relevant, 1) == 0.0 and hit_rate_at_k(ranked, relevant, 2) == 1.0
    assert mrr_at_k(ranked, relevant, 10) == 0.5 and mrr_at_k(ranked, relevant, 1) == 0.0
    assert coverage([["a", "b"], ["b", "c"]], 6, 2) == pytest.approx(0.5)
    out = summarise([["a", "b"], ["c", "d"]], [{"a"}, {"x"}], 2, 4)
    assert out == {
        "recall@2": 0.5,
        "ndcg@2": 0.5,
        "hit_rate@2": 0.5,
        "mrr@2": 0.5,
        "coverage@2": 1.0,
    }


# --- the split -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target,hidden", [("podcast", ("show", "episode")), ("audiobook", ("audiobook",))]
)
def test_cold_split_hides_all_target_history_and_keeps_the_rest(target, hidden):
    data = toy_world()
    split = cold_user_split(data, target, 0.2, seed=0)
    cold = {u.user_id for u in split.users}
    assert len(cold) == round(0.2 * split.eligible) == 24
    kinds = split.train.interactions["item_id"].map(data.kind_of())
    leaked = split.train.interactions[
        split.train.interactions["user_id"].isin(cold) & kinds.isin(hidden)
    ]
    assert leaked.empty
    # Their music (and the other spoken domain) is still there, for them and in training.
    assert split.train.interactions["user_id"].isin(cold).any()
    for user, truth in zip(split.users, split.truth):
        assert user.music and truth
        assert not set(user.spoken) & set(
            data.items.loc[data.items["kind"].isin(hidden), "item_id"]
        )
        assert truth <= set(data.catalog(target)["item_id"])
    # Exactly the cold users' target plays are gone; everything else is untouched.
    original = data.interactions
    hidden_rows = original["user_id"].isin(cold) & original["item_id"].map(data.kind_of()).isin(
        hidden
    )
    assert len(split.train.interactions) == len(original) - int(hidden_rows.sum())
    assert split.train.interactions.equals(original[~hidden_rows].reset_index(drop=True))


def test_cold_split_depends_on_the_seed_only():
    a = cold_user_split(toy_world(), "podcast", 0.2, 0)
    b = cold_user_split(toy_world(), "podcast", 0.2, 0)
    c = cold_user_split(toy_world(), "podcast", 0.2, 1)
    assert [u.user_id for u in a.users] == [u.user_id for u in b.users]
    assert [u.user_id for u in a.users] != [u.user_id for u in c.users]


def test_bad_cold_fraction_is_a_clear_error():
    with pytest.raises(ValueError, match="between 0 and 1"):
        cold_user_split(toy_world(), "podcast", 1.5, 0)


# --- the harness -----------------------------------------------------------------------


def test_harness_reports_mean_and_std_over_seeds_and_music_models_beat_popularity():
    result = evaluate(toy_world(), "podcast", 0.25, seeds=[0, 1], k=5, models=TOY_MODELS)
    assert result["target"] == "podcast" and result["k"] == 5 and result["seeds"] == [0, 1]
    assert list(result["models"]) == list(TOY_MODELS)
    for m in result["models"].values():
        for key in ("recall@5", "ndcg@5", "hit_rate@5", "mrr@5", "coverage@5"):
            assert 0.0 <= m[key] <= 1.0
            assert m[key] == pytest.approx(np.mean([run[key] for run in m["per_seed"]]))
            assert m["std"][key] == pytest.approx(np.std([run[key] for run in m["per_seed"]]))
        assert len(m["per_seed"]) == 2 and m["fallback_share"] == 0.0
    pop = result["models"]["popularity"]["ndcg@5"]
    assert result["models"]["music_knn"]["ndcg@5"] > pop + 0.1
    assert result["models"]["affinity_mlp"]["ndcg@5"] > pop + 0.1


def test_default_models_cover_the_baselines_for_every_target():
    for target in ("podcast", "audiobook"):
        models = default_models(target, 0)
        assert {
            "popularity",
            "segment_popularity",
            "music_knn",
            "cmf_als",
            "ease",
            "affinity_mlp",
        } <= set(models)
        built = {name: factory() for name, factory in models.items()}
        assert all(m.target == target and m.seed == 0 for m in built.values())


# --- end to end through the store and the CLI ----------------------------------------


def _write_dataset(data: InteractionData, out) -> None:
    out.mkdir(parents=True)
    items = data.items.copy()
    items.loc[items["item_id"].str.startswith("show-1"), "language"] = "es"  # several languages
    items.to_csv(out / "items.csv", index=False)
    data.interactions.drop(columns="timestamp").to_csv(out / "interactions.csv", index=False)
    data.users.to_csv(out / "users.csv", index=False)
    data.playlists.to_csv(out / "playlists.csv", index=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from coldstart.cli import app

    root = tmp_path_factory.mktemp("evalhome")
    _write_dataset(toy_world(), root / "dataset")
    result = CliRunner().invoke(
        app, ["--home", str(root / "home"), "ingest", str(root / "dataset")]
    )
    assert result.exit_code == 0, result.output
    return root / "home"


def test_cli_evaluate_writes_json_and_png_on_an_id_only_catalog(home):
    from coldstart.cli import app

    out = home / "eval" / "podcast.json"
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(home),
            "evaluate",
            "--target",
            "podcast",
            "--seeds",
            "0",
            "--k",
            "5",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["target"] == "podcast" and data["k"] == 5 and data["seeds"] == [0]
    assert {"popularity", "segment_popularity", "music_knn", "affinity_mlp"} <= set(data["models"])
    assert data["content_items"] == 0
    assert data["models"]["affinity_mlp"]["ndcg@5"] > data["models"]["popularity"]["ndcg@5"]
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "affinity_mlp" in result.output


def test_cli_evaluate_rejects_bad_input(home):
    from coldstart.cli import app

    runner = CliRunner()
    bad_seeds = runner.invoke(app, ["--home", str(home), "evaluate", "--seeds", "a,b"])
    assert bad_seeds.exit_code == 1 and "--seeds" in bad_seeds.output
    bad_target = runner.invoke(app, ["--home", str(home), "evaluate", "--target", "radio"])
    assert bad_target.exit_code == 1 and "unknown target" in bad_target.output


def test_cli_train_registers_artifacts_that_load_for_serving(home, monkeypatch):
    from coldstart.artifacts.training import load_models
    from coldstart.cli import app
    from coldstart.core.config import Settings
    from coldstart.core.store import Store
    from training.data import UserProfile

    monkeypatch.setenv("COLDSTART_TRAIN__EPOCHS", "8")
    result = CliRunner().invoke(
        app,
        ["--home", str(home), "train", "--target", "podcast", "--target", "audiobook", "--json"],
    )
    assert result.exit_code == 0, result.output
    manifests = json.loads(result.output)
    assert manifests["podcast"]["config"]["max_epochs"] == 8
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    assert store.artifact("affinity")["manifest"]["target"] == "podcast"
    assert store.artifact("affinity-audiobook")["manifest"]["kind"] == "affinity"
    assert store.artifact("taste")["manifest"]["dims"] == settings.train.taste_dim
    models = load_models(settings, store)
    assert set(models) == {"podcast", "audiobook"}
    ranking = models["podcast"].recommend(
        UserProfile("new", {"track-2-0": 4.0, "track-2-1": 2.0}), 3
    )
    assert len(ranking.item_ids) == 3 and not ranking.fallback


def test_demo_stage_prints_the_table_and_registers_the_serving_model(home):
    from types import SimpleNamespace

    from rich.console import Console

    from coldstart.core.config import Settings
    from coldstart.core.store import Store
    from coldstart.demo.stages import podcast_stage

    settings = Settings(home=home)
    console = Console(record=True, width=100)
    ctx = SimpleNamespace(
        settings=settings, store=Store.from_settings(settings), console=console, results={}
    )
    podcast_stage(ctx)
    text = console.export_text()
    assert "affinity_mlp" in text and "serving model" in text
    assert (home / "eval" / "podcast.png").exists()
    assert ctx.results["evaluation"]["target"] == "podcast"
    assert ctx.store.artifact("affinity")["manifest"]["target"] == "podcast"


# --- the quality bar, on the demo world ------------------------------------------------------


@pytest.fixture(scope="module")
def demo_data() -> InteractionData:
    from coldstart.demo.world import WorldConfig, build_world

    world = build_world(WorldConfig(seed=0))
    return InteractionData(
        items=world.items,
        interactions=world.interactions,
        users=world.users,
        playlists=world.playlists,
    )


def test_affinity_mlp_beats_popularity_clearly_on_the_demo_world(demo_data):
    models = {
        "popularity": lambda target, seed: PopularityRecommender(target, seed),
        "affinity_mlp": lambda target, seed: AffinityModel(target, seed),
    }
    result = evaluate(demo_data, "podcast", 0.2, seeds=[0], k=10, models=models)
    pop, mlp = result["models"]["popularity"], result["models"]["affinity_mlp"]
    assert mlp["ndcg@10"] > pop["ndcg@10"] + 0.08, (mlp["ndcg@10"], pop["ndcg@10"])
    assert mlp["recall@10"] > pop["recall@10"] + 0.08


@pytest.mark.slow
def test_affinity_mlp_beats_every_baseline_on_the_demo_world(demo_data):
    result = evaluate(demo_data, "podcast", 0.2, seeds=[0, 1, 2], k=10)
    mlp = result["models"].pop("affinity_mlp")["ndcg@10"]
    best = max(
        m["ndcg@10"]
        for name, m in result["models"].items()
        if name in ("popularity", "segment_popularity", "music_knn")
    )
    assert mlp > best, (mlp, best)


def test_cold_history_music_hides_every_spoken_play_of_cold_users():
    data = toy_world()
    split = cold_user_split(data, "audiobook", 0.2, seed=0, cold_history="music")
    cold = {u.user_id for u in split.users}
    kinds = split.train.interactions["item_id"].map(data.kind_of())
    spoken = split.train.interactions[
        split.train.interactions["user_id"].isin(cold) & ~kinds.isin(("artist", "track"))
    ]
    assert spoken.empty
    assert all(u.music and not u.spoken for u in split.users)
    # The default keeps their podcasts: only audiobooks are hidden.
    keep = cold_user_split(data, "audiobook", 0.2, seed=0)
    assert any(u.spoken for u in keep.users)
    with pytest.raises(ValueError, match="unknown cold history"):
        cold_user_split(data, "audiobook", 0.2, seed=0, cold_history="nothing")


def test_cold_users_hides_exactly_the_listed_users():
    data = toy_world()
    eligible = cold_user_split(data, "podcast", 0.2, seed=0).eligible
    listed = ["u0-000", "u1-005", "u2-007", "not-a-user"]
    split = cold_user_split(data, "podcast", 0.2, seed=3, cold_users=listed)
    assert [u.user_id for u in split.users] == listed[:3] and split.eligible == eligible
    with pytest.raises(ValueError, match="none of the 1 listed"):
        cold_user_split(data, "podcast", 0.2, seed=0, cold_users=["nobody"])


def test_harness_reports_cohorts_and_ratios_to_popularity():
    models = {"popularity": lambda t, s: PopularityRecommender(t, s)}
    result = evaluate(toy_world(), "podcast", seeds=(0,), k=5, models=models)
    pop = result["models"]["popularity"]
    assert pop["ratio_to_popularity"]["ndcg@5"] == 1.0
    assert any(key.startswith("ndcg@5[") for key in pop)
    assert sum(result["splits"][0]["cohorts"].values()) <= result["splits"][0]["cold_users"]


def test_cli_evaluate_cold_users_file_and_cold_history(home, tmp_path):
    from coldstart.cli import app

    users = tmp_path / "cold.txt"
    users.write_text("# new sign-ups\nu0-000\nu1-005\n\nu2-007\n")
    out = tmp_path / "cold.json"
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(home),
            "evaluate",
            "--target",
            "audiobook",
            "--seeds",
            "0",
            "--cold-users",
            str(users),
            "--cold-history",
            "music",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["cold_history"] == "music" and data["splits"][0]["cold_users"] == 3
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    bad = CliRunner().invoke(app, ["--home", str(home), "evaluate", "--cold-users", str(empty)])
    assert bad.exit_code == 1 and "empty.txt" in bad.output


def test_the_served_pipeline_is_evaluated_like_any_model():
    from coldstart.recommend.served import ServedPipeline

    models = {
        "popularity": lambda t, s: PopularityRecommender(t, s),
        "served_pipeline": lambda t, s: ServedPipeline(t, s),
    }
    result = evaluate(toy_world(), "podcast", seeds=(0,), k=5, models=models)["models"]
    served = result["served_pipeline"]
    assert served["fallback_share"] == 0.0
    # Toy world listeners follow their music cluster: what is served beats the chart.
    assert served["ndcg@5"] > result["popularity"]["ndcg@5"] + 0.1


def test_results_are_written_as_json_and_markdown(tmp_path):
    from coldstart.batch.eval_report import write_results

    models = {"popularity": lambda t, s: PopularityRecommender(t, s)}
    result = evaluate(toy_world(), "podcast", seeds=(0, 1), k=5, models=models)
    table = write_results({"podcast": result}, tmp_path, "toy")
    assert json.loads((tmp_path / "toy.json").read_text())["podcast"]["seeds"] == [0, 1]
    assert (tmp_path / "toy.md").read_text() == table
    assert "| popularity |" in table and "1.000" in table


@pytest.mark.slow
def test_real_data_benchmark_runs_on_the_douban_slice(tmp_path, data_dir):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "benchmarks" / "cold_start_real.py"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            str(data_dir / "douban-slice"),
            "--seeds",
            "0",
            "--targets",
            "podcast",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    table = (tmp_path / "cold_start_real-seeds-0-podcast.md").read_text()
    for model in (
        "popularity",
        "cross_domain_ridge",
        "music_knn",
        "cmf_als",
        "ease",
        "affinity_mlp",
        "served_pipeline",
    ):
        assert f"| {model} |" in table

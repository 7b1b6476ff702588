"""In-process onboarding latency: `OnboardingPipeline.recommend` over real listeners.

    .venv/bin/coldstart --home /tmp/bench demo
    .venv/bin/python benchmarks/onboarding.py --home /tmp/bench [--requests 400] [--profile]
    # old against new, side by side in one run (a worktree of the old commit):
    .venv/bin/python benchmarks/onboarding.py --home /tmp/bench --baseline /tmp/old
    # the same answers? (ids, reasons, scores of every list, both checkouts)
    .venv/bin/python benchmarks/onboarding.py --home /tmp/bench --baseline /tmp/old --compare-answers
    # in one process: the pruned top-k against the full scan (times, answers)
    .venv/bin/python benchmarks/onboarding.py --home /tmp/bench --compare-pruned

Loads the serving models of `--home` the way the server does (`load_serving_models`),
builds the pipeline and answers the music histories (with country, language, age) of
`--bodies` listeners of the store, cycled for `--requests` requests, after a warm-up.
Prints the median and p95 per request in milliseconds, wall time and the process's
CPU time (the latter is what a request costs, less disturbed by other jobs). With `--baseline REPO` the same
thing runs in a subprocess per checkout (this one and REPO), alternating `--rounds`
times, and the ratio of the medians is printed. `--profile` prints cProfile's top 25.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _profiles(home: Path, n: int):
    from coldstart.core.config import get_settings
    from coldstart.core.store import Store
    from training.data import UserProfile

    store = Store(get_settings(home).db_url)
    # The music plays only, three columns (the columnar copy where it is current): at
    # 1M the whole interactions table with its item kinds took about 7 GB more.
    music = store.plays_of(["artist", "track"], ["user_id", "item_id", "weight"])
    first = np.sort(music["user_id"].unique())[:n]  # the first n listeners by id
    music = music[music["user_id"].isin(first)]
    users = store.users().set_index("user_id")
    out = []
    for user_id, group in list(music.groupby("user_id"))[:n]:
        row = users.loc[user_id]
        history: dict[str, float] = {}
        for item, weight in zip(group["item_id"], group["weight"]):
            history[str(item)] = history.get(str(item), 0.0) + float(weight)
        out.append(
            UserProfile(
                "anonymous",
                history,
                country=row["country"],
                language=row["language"],
                age=float(row["age"]),
            )
        )
    return out


def dump_answers(home: Path, bodies: int, out: Path) -> None:
    """Every list of the answers to `bodies` listeners (ids, scores, reasons) as JSON,
    to compare two checkouts' answers (`--compare-answers`)."""
    from coldstart.core.config import get_settings
    from coldstart.core.store import Store

    load_serving_models = _loader()
    from coldstart.recommend.pipeline import OnboardingPipeline

    settings = get_settings(home)
    pipeline = OnboardingPipeline(load_serving_models(settings, Store(settings.db_url)), settings)
    answers = []
    for user in _profiles(home, bodies):
        answers.append(_answer(pipeline.recommend(user, 10)))
    out.write_text(json.dumps(answers))


def compare_answers(old: Path, new: Path, tol: float = 1e-4) -> dict:
    """Lists with other ids, reasons or scores (beyond `tol`) between two dumps."""
    return _differ(json.loads(old.read_text()), json.loads(new.read_text()), tol)


def _answer(result) -> dict:
    return {
        name: [(i.item_id, i.score, i.reasons) for i in getattr(result, name)]
        for name in ("shows", "episodes", "audiobooks")
    }


def _differ(a: list, b: list, tol: float = 1e-4) -> dict:
    differ = {"lists": 0, "ids": 0, "reasons": 0, "scores": 0, "max_score_diff": 0.0}
    for left, right in zip(a, b):
        for name in left:
            differ["lists"] += 1
            x, y = left[name], right[name]
            differ["ids"] += [i for i, _, _ in x] != [i for i, _, _ in y]
            differ["reasons"] += [r for _, _, r in x] != [r for _, _, r in y]
            diffs = [abs(s - t) for (_, s, _), (_, t, _) in zip(x, y)]
            differ["scores"] += any(d > tol for d in diffs)
            differ["max_score_diff"] = max([differ["max_score_diff"], *diffs])
    return differ


def _loader():
    """`load_serving_models` from the tree on PYTHONPATH: `coldstart.recommend.loading`,
    `coldstart.recommend.models` in a baseline from before the rename."""
    try:
        from coldstart.recommend.loading import load_serving_models
    except ModuleNotFoundError:
        from coldstart.recommend.models import load_serving_models  # type: ignore[no-redef]
    return load_serving_models


def measure(home: Path, requests: int, bodies: int, profile: bool) -> dict:
    from coldstart.core.config import get_settings
    from coldstart.core.store import Store

    load_serving_models = _loader()
    from coldstart.recommend.pipeline import OnboardingPipeline
    from training.threads import pin_process_threads

    pin_process_threads(1)  # as the server does
    settings = get_settings(home)
    store = Store(settings.db_url)
    started = time.perf_counter()
    pipeline = OnboardingPipeline(load_serving_models(settings, store), settings)
    load_s = time.perf_counter() - started
    users = _profiles(home, bodies)
    for user in users[:50]:  # warm-up
        pipeline.recommend(user, 10)
    times, cpu = np.zeros(requests), np.zeros(requests)
    for n in range(requests):
        t0, c0 = time.perf_counter(), time.process_time()
        pipeline.recommend(users[n % len(users)], 10)
        times[n], cpu[n] = time.perf_counter() - t0, time.process_time() - c0
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for n in range(requests):
            pipeline.recommend(users[n % len(users)], 10)
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return {
        "repo": str(Path(__import__("coldstart").__file__).resolve().parents[1]),
        "requests": requests,
        "median_ms": float(np.median(times) * 1e3),
        "p95_ms": float(np.percentile(times, 95) * 1e3),
        # CPU time of the process per request: what the request costs, much less
        # disturbed than wall time when other jobs share the cores.
        "cpu_median_ms": float(np.median(cpu) * 1e3),
        "load_s": load_s,
    }


def measure_pruned(home: Path, requests: int, bodies: int, rounds: int) -> dict:
    """In one process (one load of the models): the served models' top-k through the
    pruned path (`coldstart.recommend.pruned_top`) against the full scan (the pruned
    path switched off), alternating `rounds` times, and both paths' answers to every
    body compared list by list."""
    from coldstart.core.config import get_settings
    from coldstart.core.store import Store
    from coldstart.recommend.fast import ServedScorer
    from coldstart.recommend.pipeline import OnboardingPipeline
    from training.threads import pin_process_threads

    pin_process_threads(1)  # as the server does
    settings = get_settings(home)
    pipeline = OnboardingPipeline(_loader()(settings, Store(settings.db_url)), settings)
    scorers = [
        s.model
        for sources in pipeline.sources.values()
        for s in sources
        if isinstance(getattr(s, "model", None), ServedScorer)
    ]
    pruned = [scorer.pruned for scorer in scorers]
    modes = {"full": [None] * len(scorers), "pruned": pruned}
    users = _profiles(home, bodies)
    answers = {}
    for mode, keys in modes.items():
        for scorer, key in zip(scorers, keys):
            scorer.pruned = key
        answers[mode] = [_answer(pipeline.recommend(user, 10)) for user in users]
    runs: dict[str, list[dict]] = {"full": [], "pruned": []}
    for _ in range(rounds):
        for mode, keys in modes.items():
            for scorer, key in zip(scorers, keys):
                scorer.pruned = key
            times, cpu = np.zeros(requests), np.zeros(requests)
            for n in range(requests):
                t0, c0 = time.perf_counter(), time.process_time()
                pipeline.recommend(users[n % len(users)], 10)
                times[n], cpu[n] = time.perf_counter() - t0, time.process_time() - c0
            runs[mode].append(
                {
                    "median_ms": float(np.median(times) * 1e3),
                    "p95_ms": float(np.percentile(times, 95) * 1e3),
                    "cpu_median_ms": float(np.median(cpu) * 1e3),
                    "cpu_mean_ms": float(np.mean(cpu) * 1e3),
                }
            )
    report: dict = {
        mode: {
            key: float(np.median([r[key] for r in rs]))
            for key in ("median_ms", "p95_ms", "cpu_median_ms", "cpu_mean_ms")
        }
        | {"runs": rs}
        for mode, rs in runs.items()
    }
    report["pruned_models"] = sum(key is not None for key in pruned)
    report["speedup"] = report["full"]["median_ms"] / report["pruned"]["median_ms"]
    report["cpu_speedup"] = report["full"]["cpu_median_ms"] / report["pruned"]["cpu_median_ms"]
    report["answers"] = _differ(answers["full"], answers["pruned"])
    report["load_average"] = os.getloadavg()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--bodies", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None, help="Checkout of the old code.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dump", type=Path, default=None, help="Write the answers, then stop.")
    parser.add_argument(
        "--compare-answers",
        action="store_true",
        help="With --baseline: the answers of both checkouts, compared list by list.",
    )
    parser.add_argument(
        "--compare-pruned",
        action="store_true",
        help="In one process: the pruned top-k against the full scan (times and answers).",
    )
    args = parser.parse_args()
    if args.compare_pruned:
        report = measure_pruned(args.home, args.requests, args.bodies, args.rounds)
        print(json.dumps({k: v for k, v in report.items() if k not in ("full", "pruned")}))
        for mode in ("full", "pruned"):
            print(mode, {k: v for k, v in report[mode].items() if k != "runs"})
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        return
    if args.dump is not None:
        dump_answers(args.home, args.bodies, args.dump)
        return
    if args.compare_answers:
        dumps = {}
        for name, repo in (("baseline", args.baseline.resolve()), ("current", REPO)):
            dumps[name] = Path(f"/tmp/onboarding-answers-{name}-{os.getpid()}.json")
            env = {**os.environ, "PYTHONPATH": str(repo)}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--home", str(args.home)]
            cmd += ["--bodies", str(args.bodies), "--dump", str(dumps[name])]
            subprocess.run(cmd, env=env, check=True)
        print(json.dumps(compare_answers(dumps["baseline"], dumps["current"])))
        return
    if args.baseline is None:
        result = measure(args.home, args.requests, args.bodies, args.profile)
        print(json.dumps(result))
        return
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    for _ in range(args.rounds):
        for name, repo in (("baseline", args.baseline.resolve()), ("current", REPO)):
            env = {**os.environ, "PYTHONPATH": str(repo)}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--home", str(args.home)]
            cmd += ["--requests", str(args.requests), "--bodies", str(args.bodies)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    report = {
        name: {
            "median_ms": float(np.median([r["median_ms"] for r in rs])),
            "p95_ms": float(np.median([r["p95_ms"] for r in rs])),
            "cpu_median_ms": float(np.median([r["cpu_median_ms"] for r in rs])),
            "load_s": float(np.median([r["load_s"] for r in rs])),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    report["speedup"] = report["baseline"]["median_ms"] / report["current"]["median_ms"]
    report["cpu_speedup"] = report["baseline"]["cpu_median_ms"] / report["current"]["cpu_median_ms"]
    report["load_average"] = os.getloadavg()
    for name in ("baseline", "current"):
        r = report[name]
        print(
            f"{name:9s} median {r['median_ms']:.3f} ms  p95 {r['p95_ms']:.3f} ms  "
            f"CPU median {r['cpu_median_ms']:.3f} ms  load {r['load_s']:.2f} s"
        )
    print(
        f"speedup (median wall) {report['speedup']:.2f}x, (median CPU) "
        f"{report['cpu_speedup']:.2f}x, load average {report['load_average']}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

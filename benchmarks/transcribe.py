"""Word error rate and speed of every transcription config on the real-speech dev set.

    .venv/bin/python benchmarks/transcribe.py --threads 2            # the whole table
    .venv/bin/python benchmarks/transcribe.py --only cli,long         # CLI runs and long files only
    .venv/bin/python benchmarks/transcribe.py --report benchmarks/results/transcribe.json

Three parts, all on the dev set in tests/data/speech-dev (real recorded English speech,
389 s, 902 reference words; see its README.md):

- `matrix`: engine x model x beam x VAD x batched x without_timestamps. Every config
  runs in a fresh spawned process with `--threads` CPU threads: `load_engine` is timed
  (imports, model join/conversion cache, weights), then `transcribe_file` (the code the
  CLI runs) over every clip. WER is corpus-level with Whisper's EnglishTextNormalizer
  (transcripts.wer). Speeds are seconds of audio per wall second: `decode` counts the
  transcription only, `with load` adds the model load. VAD and batching are
  faster-whisper features; openai-whisper rows have neither.
- `cli`: `coldstart transcribe FILES --json` as a new user runs it (process start,
  imports, model load, all four clips), for the default config and the previous
  default; --cli-repeats runs each, alternating, median reported.
- `long`: the dev set's audio repeated to 5, 20 and 60 minutes (Opus files), each
  transcribed by the CLI with the default config; peak RSS of that process (wait4) and
  its speed.

Results go to benchmarks/results/transcribe.json (rewritten after every row, so a
partial run keeps what it measured) and print as Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "speech-dev"
RESULTS = ROOT / "benchmarks" / "results" / "transcribe.json"
sys.path.insert(0, str(ROOT))

from transcripts import load_audio, load_engine, prepare_model, transcribe_file  # noqa: E402
from transcripts.audio import write_audio  # noqa: E402
from transcripts.wer import corpus_word_error_rate  # noqa: E402


@dataclass(frozen=True)
class Config:
    engine: str
    model: str
    beam_size: int
    vad_filter: bool = False
    batch_size: int = 0
    without_timestamps: bool = False

    @property
    def label(self) -> str:
        parts = [self.engine, self.model, f"beam {self.beam_size}"]
        if self.batch_size:
            parts.append(f"batched {self.batch_size} (VAD)")
        elif self.vad_filter:
            parts.append("VAD")
        if self.without_timestamps:
            parts.append("no timestamps")
        return ", ".join(parts)


def dev_clips() -> list[dict]:
    manifest = json.loads((DEV / "manifest.json").read_text())
    return [dict(c, path=str(DEV / c["file"])) for c in manifest["clips"]]


def all_configs(models: list[str], beams: list[int], batch_size: int) -> list[Config]:
    out = []
    for model in models:
        for beam in beams:
            for wts in (False, True):
                out.append(Config("faster-whisper", model, beam, False, 0, wts))
                out.append(Config("faster-whisper", model, beam, True, 0, wts))
                out.append(Config("faster-whisper", model, beam, True, batch_size, wts))
    # openai-whisper (no VAD, no batching) last: the slowest rows.
    return out + [Config("openai-whisper", model, beam) for model in models for beam in beams]


# --- one config in its own process --------------------------------------------


def _run_config(config: dict, clips: list[dict], cache: str, threads: int) -> dict:
    started = time.perf_counter()
    engine = load_engine(
        config["engine"],
        config["model"],
        cache,
        config["beam_size"],
        None,
        threads,
        vad_filter=config["vad_filter"],
        batch_size=config["batch_size"],
        without_timestamps=config["without_timestamps"],
    )
    load_s = time.perf_counter() - started
    texts, decode_s = [], 0.0
    cpu = time.process_time()  # every thread of this process
    for clip in clips:
        started = time.perf_counter()
        texts.append(transcribe_file(clip["path"], engine).text)
        decode_s += time.perf_counter() - started
    return {
        "load_s": load_s,
        "decode_s": decode_s,
        "cpu_s": time.process_time() - cpu,
        "texts": texts,
    }


def run_matrix(
    configs: list[Config], clips: list[dict], cache: str, threads: int, results: dict
) -> None:
    audio = sum(c["seconds"] for c in clips)
    refs = [c["text"] for c in clips]
    spawn = multiprocessing.get_context("spawn")
    for engine, model in sorted({(c.engine, c.model) for c in configs}):
        prepare_model(engine, model, cache)  # joined/converted once, outside the timed loads
    for config in configs:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            out = pool.submit(_run_config, asdict(config), clips, cache, threads).result()
        row = {
            **asdict(config),
            "label": config.label,
            "threads": threads,
            "wer": corpus_word_error_rate(refs, out["texts"]),
            "wer_by_clip": {
                c["file"]: corpus_word_error_rate([c["text"]], [t])
                for c, t in zip(clips, out["texts"])
            },
            "load_s": out["load_s"],
            "decode_s": out["decode_s"],
            "speed_decode": audio / out["decode_s"],
            "speed_with_load": audio / (out["decode_s"] + out["load_s"]),
            "cpu_s": out["cpu_s"],
            # Audio seconds per CPU second: what one uncontended core would give, a lower
            # bound for `threads` free cores (spin-waiting counts as CPU time too).
            "speed_cpu": audio / out["cpu_s"],
            "loadavg_after": os.getloadavg()[0],
            "texts": out["texts"],
        }
        results["matrix"] = [r for r in results.get("matrix", []) if r["label"] != row["label"]] + [
            row
        ]
        save(results)
        print(
            f"{row['wer']:6.1%} {row['speed_decode']:6.1f}x {row['speed_with_load']:6.1f}x  {config.label}",
            flush=True,
        )


# --- the CLI as a user runs it -------------------------------------------------


def _cli_env(config: dict, threads: int, home: str) -> dict:
    env = dict(os.environ, COLDSTART_HOME=home, COLDSTART_TRANSCRIBE__THREADS=str(threads))
    for key, value in config.items():
        env[f"COLDSTART_TRANSCRIBE__{key.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


CLI = [
    sys.executable,
    "-c",
    "from coldstart.cli import main; main()",
]  # what the console script runs


def _cli(config: dict, files: list[str], threads: int, home: str) -> dict:
    """One `coldstart transcribe FILES --json`: wall and CPU seconds, peak RSS (wait4), texts."""
    command = [*CLI, "transcribe", *files, "--json"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, env=_cli_env(config, threads, home), stdout=out, stderr=errors, cwd=ROOT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        errors.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(
                f"coldstart transcribe failed ({proc.returncode}): {errors.read().decode()[-2000:]}"
            )
        rows = [json.loads(line) for line in out.read().decode().splitlines() if line.strip()]
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "texts": [r["text"] for r in rows],
    }


def default_config() -> dict:
    from coldstart.core.config import TranscribeSettings

    d = TranscribeSettings()
    return {
        "engine": d.engine,
        "model": d.model,
        "beam_size": d.beam_size,
        "vad_filter": d.vad_filter,
        "batch_size": d.batch_size,
    }


PREVIOUS_DEFAULT = {
    "engine": "faster-whisper",
    "model": "tiny.en",
    "beam_size": 1,
    "vad_filter": False,
    "batch_size": 0,
}


def run_cli_part(clips: list[dict], threads: int, repeats: int, home: str, results: dict) -> None:
    audio = sum(c["seconds"] for c in clips)
    files = [c["path"] for c in clips]
    configs = {"default": default_config(), "previous default (tiny.en, beam 1)": PREVIOUS_DEFAULT}
    for config in configs.values():  # untimed: join/convert caches, page cache
        _cli(config, files[:1], threads, home)
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, config in configs.items():
            runs[name].append(_cli(config, files, threads, home))
            runs[name][-1]["loadavg"] = os.getloadavg()[0]
    results["cli"] = [
        {
            "name": name,
            "config": configs[name],
            "threads": threads,
            "walls": [r["wall_s"] for r in runs[name]],
            "cpu_s": [r["cpu_s"] for r in runs[name]],
            "loadavg": [r["loadavg"] for r in runs[name]],
            "speed_median": audio / statistics.median(r["wall_s"] for r in runs[name]),
            "speed_cpu_median": audio / statistics.median(r["cpu_s"] for r in runs[name]),
            "wer": corpus_word_error_rate([c["text"] for c in clips], runs[name][-1]["texts"]),
        }
        for name in configs
    ]
    save(results)
    for row in results["cli"]:
        print(
            f"CLI {row['name']}: WER {row['wer']:.1%}, {row['speed_median']:.1f}x wall, "
            f"{row['speed_cpu_median']:.1f}x per CPU second (walls {row['walls']})",
            flush=True,
        )


def run_long_part(
    clips: list[dict], minutes: list[float], threads: int, home: str, folder: Path, results: dict
) -> None:
    signal = np.concatenate([load_audio(c["path"]) for c in clips])
    config = default_config()
    rows = []
    for m in minutes:
        samples = int(m * 60 * 16_000)
        path = write_audio(
            folder / f"long-{m:g}min.ogg", np.resize(signal, samples), bit_rate=32_000
        )
        run = _cli(config, [str(path)], threads, home)
        rows.append(
            {
                "minutes": m,
                "wall_s": run["wall_s"],
                "cpu_s": run["cpu_s"],
                "speed": m * 60 / run["wall_s"],
                "speed_cpu": m * 60 / run["cpu_s"],
                "peak_rss_mb": run["peak_rss_mb"],
                "words": len(run["texts"][0].split()),
                "loadavg": os.getloadavg()[0],
                "config": config,
            }
        )
        results["long"] = rows
        save(results)
        print(
            f"long {m:g} min: peak RSS {run['peak_rss_mb']:.0f} MB, {rows[-1]['speed']:.1f}x real time",
            flush=True,
        )
        path.unlink()


# --- results -------------------------------------------------------------------


def save(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))


def rescore(results: dict, clips: list[dict]) -> None:
    """Recompute every matrix row's WER from its stored texts against the current references."""
    refs = [c["text"] for c in clips]
    for r in results.get("matrix", []):
        r["wer"] = corpus_word_error_rate(refs, r["texts"])
        r["wer_by_clip"] = {
            c["file"]: corpus_word_error_rate([c["text"]], [t]) for c, t in zip(clips, r["texts"])
        }


def report(results: dict) -> None:
    matrix = results.get("matrix", [])
    if matrix:
        print(
            f"\n{results['audio_seconds']:.0f} s of real speech, {results['reference_words']} words; "
            f"{matrix[0]['threads']} threads; speed = audio s per wall s\n"
        )
        print(
            "| engine | model | beam | VAD | batched | timestamps | WER | LJ | sonnets | speed (decode) | speed (with load) | speed per CPU s | load s | load avg |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(
            matrix,
            key=lambda r: (
                r["engine"],
                r["model"] != "tiny.en",
                r["beam_size"],
                r["batch_size"],
                r["vad_filter"],
                r["without_timestamps"],
            ),
        ):
            by = r["wer_by_clip"]
            sonnets = [v for k, v in by.items() if k.startswith("sonnet")]
            lj = [v for k, v in by.items() if k.startswith("lj")]
            print(
                f"| {r['engine']} | {r['model']} | {r['beam_size']} | {'yes' if r['vad_filter'] or r['batch_size'] else 'no'} "
                f"| {r['batch_size'] or 'no'} | {'no' if r['without_timestamps'] else 'yes'} | {r['wer']:.1%} "
                f"| {statistics.mean(lj):.1%} | {statistics.mean(sonnets):.1%} "
                f"| {r['speed_decode']:.1f}x | {r['speed_with_load']:.1f}x "
                f"| {format(r['speed_cpu'], '.1f') + 'x' if 'speed_cpu' in r else '-'} | {r['load_s']:.1f} | {r['loadavg_after']:.1f} |"
            )
    plain = {
        (r["engine"], r["model"], r["beam_size"]): r
        for r in matrix
        if not (r["vad_filter"] or r["batch_size"] or r["without_timestamps"])
    }
    pairs = [
        k[1:] for k in plain if k[0] == "openai-whisper" and ("faster-whisper", *k[1:]) in plain
    ]
    if pairs:
        print(
            "\n| model, beam (sequential, no VAD) | faster-whisper (int8) | openai-whisper (fp32) | difference |"
        )
        print("|---|---|---|---|")
        for model, beam in sorted(pairs):
            f, o = (
                plain[("faster-whisper", model, beam)]["wer"],
                plain[("openai-whisper", model, beam)]["wer"],
            )
            print(f"| {model}, beam {beam} | {f:.1%} | {o:.1%} | {100 * (f - o):+.1f} points |")
    audio = results.get("audio_seconds", 0)
    for row in results.get("cli", []):  # per CPU second, from the stored CPU times
        row["speed_cpu_median"] = audio / statistics.median(row["cpu_s"])
    for row in results.get("long", []):
        row["speed_cpu"] = row["minutes"] * 60 / row["cpu_s"]
    if results.get("cli"):
        print(
            "\n| CLI run (`coldstart transcribe FILES --json`) | WER | speed, wall (median) | speed per CPU second | walls s | load avg |"
        )
        print("|---|---|---|---|---|---|")
        for row in results["cli"]:
            c = row["config"]
            label = f"{row['name']}: {c['model']}, beam {c['beam_size']}, batch {c['batch_size']}, VAD {c['vad_filter']}"
            print(
                f"| {label} | {row['wer']:.1%} | {row['speed_median']:.1f}x | {row.get('speed_cpu_median', 0):.1f}x "
                f"| {', '.join(f'{w:.1f}' for w in row['walls'])} | {', '.join(f'{x:.1f}' for x in row.get('loadavg', []))} |"
            )
    if results.get("long"):
        print(
            "\n| episode | peak RSS | speed, wall | speed per CPU second | load avg |\n|---|---|---|---|---|"
        )
        for row in results["long"]:
            print(
                f"| {row['minutes']:g} min | {row['peak_rss_mb']:.0f} MB | {row['speed']:.1f}x "
                f"| {row.get('speed_cpu', 0):.1f}x | {row.get('loadavg', 0):.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="matrix,cli,long", help="parts to run: matrix, cli, long")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per engine")
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--beams", default="1,5")
    parser.add_argument("--engines", default="faster-whisper,openai-whisper")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the batched rows")
    parser.add_argument("--cli-repeats", type=int, default=3)
    parser.add_argument("--long-minutes", default="5,20,60")
    parser.add_argument(
        "--home",
        default=None,
        help="COLDSTART_HOME for the runs (keeps joined/converted models); "
        "default: a temporary folder",
    )
    parser.add_argument(
        "--redo", action="store_true", help="rerun matrix rows already in the results file"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="print the tables of an earlier run and stop"
    )
    args = parser.parse_args()
    if args.report:
        results = json.loads(args.report.read_text())
        rescore(results, dev_clips())
        report(results)
        return

    clips = dev_clips()
    parts = set(args.only.split(","))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(
        {
            "audio_seconds": sum(c["seconds"] for c in clips),
            "reference_words": sum(c["words"] for c in clips),
            "machine": {
                "cpus": os.cpu_count(),
                "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
            },
            "command": " ".join(["benchmarks/transcribe.py", *sys.argv[1:]]),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        home = str(Path(args.home).resolve()) if args.home else tmp
        cache = str(Path(home) / "models" / "whisper")
        if "matrix" in parts:
            configs = [
                c
                for c in all_configs(
                    args.models.split(","), [int(b) for b in args.beams.split(",")], args.batch_size
                )
                if c.engine in args.engines.split(",")
            ]
            done = {r["label"] for r in results.get("matrix", [])}
            configs = [c for c in configs if args.redo or c.label not in done]
            run_matrix(configs, clips, cache, args.threads, results)
        if "cli" in parts:
            run_cli_part(clips, args.threads, args.cli_repeats, home, results)
        if "long" in parts:
            run_long_part(
                clips,
                [float(m) for m in args.long_minutes.split(",")],
                args.threads,
                home,
                Path(tmp),
                results,
            )
    report(results)


if __name__ == "__main__":
    main()

"""Word error rate and speed of transcription configs on read AND conversational speech.

    .venv/bin/python benchmarks/transcribe.py --threads 2                 # routes, CLI, long files
    .venv/bin/python benchmarks/transcribe.py --only cli --cli-repeats 3  # the CLI comparison only
    .venv/bin/python benchmarks/transcribe.py --matrix grid --sets read   # the earlier read-only grid
    .venv/bin/python benchmarks/transcribe.py --report benchmarks/results/transcribe-conversational.json

Two dev sets, side by side in every row:

- `read`: tests/data/speech-dev (LibriVox narration and sonnets, 389 s, 902 words,
  public domain; see its README.md);
- `conv`: ../shared/data/speech-conversational-dev (earnings-call answers and prepared
  remarks, a Supreme Court justice's questions; 479 s, 1,244 words). It lives beside the
  checkout, not in it (the earnings audio may not be redistributed); `--conv-dir` points
  elsewhere, and without it the conversational columns stay empty.

Three parts:

- `matrix`: one row per config. `--matrix routes` (default) holds the routes measured
  for conversation (VAD on/off/tuned, batched with VAD chunks or with pause cuts that
  keep all audio, beam 1/5, tiny.en/base, conditioning on previous text); `--matrix
  grid` the earlier engine x model x beam x VAD x batched x without_timestamps grid.
  Every config runs in a fresh spawned process with `--threads` CPU threads:
  `load_engine` is timed, then `transcribe_file` (the code the CLI runs) over every
  clip. WER is corpus-level per set with Whisper's EnglishTextNormalizer
  (transcripts.wer), with substitutions / deletions / insertions. Speeds are audio
  seconds per wall second over both sets: `decode` counts transcription only, `with
  load` adds the model load.
- `cli`: `coldstart transcribe FILES --json` as a new user runs it (process start,
  imports, model load) on all clips of both sets, for the default, the previous default
  and the other candidates (`--cli-configs`); each repeated `--cli-repeats` times,
  alternating, median wall reported, with the load average.
- `long`: the read set's audio repeated to 5, 20 and 60 minutes (Opus files), each
  transcribed by the CLI with the default config; peak RSS of that process (wait4) and
  its speed.

Results go to `--out` (default benchmarks/results/transcribe-conversational.json),
rewritten after every row, so a partial run keeps what it measured, and print as
Markdown tables.
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
CONV = ROOT.parent / "shared" / "data" / "speech-conversational-dev"
RESULTS = ROOT / "benchmarks" / "results" / "transcribe-conversational.json"
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
    condition_on_previous_text: bool = False
    vad_parameters: tuple = ()  # ((name, value), ...): faster-whisper VadOptions

    @property
    def label(self) -> str:
        parts = [self.engine, self.model, f"beam {self.beam_size}"]
        if self.batch_size:
            chunks = "VAD chunks" if self.vad_filter else "pause cuts"
            parts.append(f"batched {self.batch_size} ({chunks})")
        elif self.vad_filter:
            parts.append("VAD")
        if self.vad_parameters:
            parts.append("VAD " + " ".join(f"{k}={v:g}" for k, v in self.vad_parameters))
        if self.without_timestamps:
            parts.append("no timestamps")
        if self.condition_on_previous_text:
            parts.append("conditioned on previous text")
        return ", ".join(parts)


def dev_clips() -> list[dict]:
    """The read set: clips with path, text, seconds, words, and set="read"."""
    manifest = json.loads((DEV / "manifest.json").read_text())
    return [dict(c, path=str(DEV / c["file"]), set="read") for c in manifest["clips"]]


def conv_clips(folder: Path) -> list[dict]:
    """The conversational set (manifest.json: a list of clips with a text_file each)."""
    if not (folder / "manifest.json").exists():
        return []
    clips = json.loads((folder / "manifest.json").read_text())
    return [
        dict(
            c,
            path=str(folder / c["file"]),
            text=(folder / c["text_file"]).read_text().strip(),
            set="conv",
        )
        for c in clips
    ]


def clips_of(args) -> list[dict]:
    sets = args.sets.split(",")
    return (dev_clips() if "read" in sets else []) + (
        conv_clips(Path(args.conv_dir)) if "conv" in sets else []
    )


def public_texts(clips: list[dict], texts: list[str]) -> list[str | None]:
    """The texts of the read (public-domain) clips; None for the conversational ones."""
    return [t if c["set"] == "read" else None for c, t in zip(clips, texts)]


def score(clips: list[dict], texts: list[str]) -> dict:
    """WER per set (read, conv), per clip, and the edit counts of each set."""
    import jiwer

    from transcripts.wer import normalize_english

    out: dict = {"wer_by_clip": {}}
    for name in ("read", "conv"):
        pairs = [(c, t) for c, t in zip(clips, texts) if c["set"] == name]
        if not pairs:
            continue
        refs, hyps = [c["text"] for c, _ in pairs], [t for _, t in pairs]
        out[f"wer_{name}"] = corpus_word_error_rate(refs, hyps)
        edits = jiwer.process_words(
            [normalize_english(r) for r in refs], [normalize_english(h) for h in hyps]
        )
        out[f"edits_{name}"] = {
            "substitutions": edits.substitutions,
            "deletions": edits.deletions,
            "insertions": edits.insertions,
        }
    for c, t in zip(clips, texts):
        out["wer_by_clip"][c["file"]] = corpus_word_error_rate([c["text"]], [t])
    out["wer"] = out.get("wer_read", out.get("wer_conv"))  # the earlier tables' column
    return out


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


# Silero VAD tuned for quiet and telephone speech: a lower threshold, more padding.
LOW_VAD = (("threshold", 0.2), ("min_silence_duration_ms", 160), ("speech_pad_ms", 800))


def route_configs(models: list[str], batch_size: int) -> list[Config]:
    """The routes measured for conversation (issue 29), every one on both sets."""
    fw = "faster-whisper"
    out = [
        Config(fw, "tiny.en", 5, True, batch_size, True),  # the previous default
        Config(fw, "tiny.en", 5, False, batch_size, True),  # the default: pause cuts
        Config(fw, "tiny.en", 1, False, batch_size, True),
        Config(fw, "tiny.en", 5, True, batch_size, True, vad_parameters=LOW_VAD),
        Config(fw, "tiny.en", 5, True, 0),
        Config(fw, "tiny.en", 5, False, 0),
        Config(fw, "tiny.en", 1, False, 0),
        Config(fw, "tiny.en", 5, False, 0, condition_on_previous_text=True),
    ]
    for model in models:
        if model != "tiny.en":
            out += [Config(fw, model, 5, False, batch_size, True), Config(fw, model, 5, False, 0)]
    return out


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
        condition_on_previous_text=config["condition_on_previous_text"],
        vad_parameters=tuple(tuple(p) for p in config["vad_parameters"]),
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
            "sets": sorted({c["set"] for c in clips}),
            **score(clips, out["texts"]),
            "load_s": out["load_s"],
            "decode_s": out["decode_s"],
            "speed_decode": audio / out["decode_s"],
            "speed_with_load": audio / (out["decode_s"] + out["load_s"]),
            "cpu_s": out["cpu_s"],
            # Audio seconds per CPU second: what one uncontended core would give, a lower
            # bound for `threads` free cores (spin-waiting counts as CPU time too).
            "speed_cpu": audio / out["cpu_s"],
            "loadavg_after": os.getloadavg()[0],
            # Transcripts of the earnings-call audio stay out of the repository (its
            # licence is evaluation only): only the public-domain read set's are kept.
            "texts": public_texts(clips, out["texts"]),
        }
        results["matrix"] = [r for r in results.get("matrix", []) if r["label"] != row["label"]] + [
            row
        ]
        save(results)
        print(
            f"read {row.get('wer_read', float('nan')):6.1%} conv {row.get('wer_conv', float('nan')):6.1%} "
            f"{row['speed_decode']:6.1f}x {row['speed_with_load']:6.1f}x  {config.label}",
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


def _fw(beam: int, vad: bool, batch: int, model: str = "tiny.en") -> dict:
    return {
        "engine": "faster-whisper",
        "model": model,
        "beam_size": beam,
        "vad_filter": vad,
        "batch_size": batch,
    }


# What `--cli-configs` may name besides "default" (settings' defaults).
CLI_CONFIGS = {
    "previous": ("previous default: batched 8, VAD chunks", _fw(5, True, 8)),
    "pause-beam1": ("batched 8, pause cuts, beam 1", _fw(1, False, 8)),
    "seq-beam1": ("sequential, no VAD, beam 1", _fw(1, False, 0)),
    "seq-beam5": ("sequential, no VAD, beam 5", _fw(5, False, 0)),
    "oldest": ("first default: sequential, no VAD, beam 1", _fw(1, False, 0)),
    "base-pause": ("base, batched 8, pause cuts", _fw(5, False, 8, "base")),
}


def run_cli_part(
    clips: list[dict], names: list[str], threads: int, repeats: int, home: str, results: dict
) -> None:
    audio = sum(c["seconds"] for c in clips)
    files = [c["path"] for c in clips]
    configs = {"default": ("default", default_config())}
    configs.update({n: CLI_CONFIGS[n] for n in names if n != "default"})
    shortest = min(clips, key=lambda c: c["seconds"])["path"]
    for _, config in configs.values():  # untimed: join/convert caches, page cache
        _cli(config, [shortest], threads, home)
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for _ in range(repeats):  # alternating, so every config sees the same load
        for name, (_, config) in configs.items():
            runs[name].append(_cli(config, files, threads, home))
            runs[name][-1]["loadavg"] = os.getloadavg()[0]
    results["cli"] = [
        {
            "name": label,
            "config": config,
            "threads": threads,
            "audio_seconds": audio,
            "walls": [r["wall_s"] for r in runs[name]],
            "cpu_s": [r["cpu_s"] for r in runs[name]],
            "loadavg": [r["loadavg"] for r in runs[name]],
            "speed_median": audio / statistics.median(r["wall_s"] for r in runs[name]),
            "speed_cpu_median": audio / statistics.median(r["cpu_s"] for r in runs[name]),
            **score(clips, runs[name][-1]["texts"]),
        }
        for name, (label, config) in configs.items()
    ]
    save(results)
    for row in results["cli"]:
        print(
            f"CLI {row['name']}: read {row.get('wer_read', float('nan')):.1%}, "
            f"conv {row.get('wer_conv', float('nan')):.1%}, {row['speed_median']:.1f}x wall, "
            f"{row['speed_cpu_median']:.1f}x per CPU second (walls {row['walls']})",
            flush=True,
        )


def run_long_part(
    clips: list[dict], minutes: list[float], threads: int, home: str, folder: Path, results: dict
) -> None:
    signal = np.concatenate([load_audio(c["path"]) for c in clips if c["set"] == "read"])
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


def set_results_path(path: Path) -> None:
    global RESULTS
    RESULTS = path


def rescore(results: dict, clips: list[dict]) -> None:
    """Recompute every row's WERs from its stored texts against the current references."""
    for r in results.get("matrix", []):
        sets = r.get("sets", ["read"])
        mine = [c for c in clips if c["set"] in sets]
        if len(mine) != len(r["texts"]):
            continue
        kept = [(c, t) for c, t in zip(mine, r["texts"]) if t is not None]
        by_clip = r.get("wer_by_clip", {})
        r.update(score([c for c, _ in kept], [t for _, t in kept]))
        r["wer_by_clip"] = {**by_clip, **r["wer_by_clip"]}


def _pct(row: dict, key: str) -> str:
    return f"{row[key]:.1%}" if key in row else "-"


def _mean_of(row: dict, prefix: str) -> str:
    values = [v for k, v in row.get("wer_by_clip", {}).items() if k.startswith(prefix)]
    return f"{statistics.mean(values):.1%}" if values else "-"


def report(results: dict) -> None:
    matrix = results.get("matrix", [])
    if matrix:
        print(
            f"\n{results.get('audio_seconds', 0):.0f} s of speech; {matrix[0]['threads']} threads; "
            "speed = audio s per wall s (both sets together)\n"
        )
        print(
            "| config | read WER | narration | sonnets | conversational WER | conv. deletions "
            "| speed (decode) | speed (with load) | speed per CPU s | load avg |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in matrix:
            deletions = r.get("edits_conv", {}).get("deletions", "-")
            print(
                f"| {r['label']} | {_pct(r, 'wer_read')} | {_mean_of(r, 'lj')} "
                f"| {_mean_of(r, 'sonnet')} | {_pct(r, 'wer_conv')} | {deletions} "
                f"| {r['speed_decode']:.1f}x | {r['speed_with_load']:.1f}x "
                f"| {format(r['speed_cpu'], '.1f') + 'x' if 'speed_cpu' in r else '-'} | {r['loadavg_after']:.1f} |"
            )
    if results.get("cli"):
        print(
            "\n| CLI run (`coldstart transcribe FILES --json`) | read WER | conversational WER "
            "| speed, wall (median) | speed per CPU second | walls s | load avg |"
        )
        print("|---|---|---|---|---|---|---|")
        for row in results["cli"]:
            c = row["config"]
            label = (
                f"{row['name']}: {c['model']}, beam {c['beam_size']}, batch {c['batch_size']}, "
                f"VAD {c['vad_filter']}"
            )
            print(
                f"| {label} | {_pct(row, 'wer_read')} | {_pct(row, 'wer_conv')} "
                f"| {row['speed_median']:.1f}x | {row.get('speed_cpu_median', 0):.1f}x "
                f"| {', '.join(f'{w:.1f}' for w in row['walls'])} "
                f"| {', '.join(f'{x:.1f}' for x in row.get('loadavg', []))} |"
            )
    if results.get("long"):
        print(
            "\n| episode | peak RSS | speed, wall | speed per CPU second | load avg |\n|---|---|---|---|---|"
        )
        for row in results["long"]:
            print(
                f"| {row['minutes']:g} min | {row['peak_rss_mb']:.0f} MB | {row['speed']:.1f}x "
                f"| {row['minutes'] * 60 / row['cpu_s']:.1f}x | {row.get('loadavg', 0):.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="matrix,cli,long", help="parts to run: matrix, cli, long")
    parser.add_argument("--matrix", default="routes", choices=["routes", "grid"])
    parser.add_argument("--sets", default="read,conv", help="dev sets: read, conv")
    parser.add_argument("--conv-dir", default=str(CONV), help="the conversational dev set")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per engine")
    parser.add_argument(
        "--models",
        default="tiny.en",
        help="models of the grid; a model other than tiny.en adds two rows to the routes "
        "(e.g. tiny.en,base)",
    )
    parser.add_argument("--beams", default="1,5", help="beams of the grid")
    parser.add_argument("--engines", default="faster-whisper,openai-whisper")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the batched rows")
    parser.add_argument("--cli-repeats", type=int, default=3)
    parser.add_argument(
        "--cli-configs",
        default="default,previous,seq-beam1",
        help=f"CLI configs: default, {', '.join(CLI_CONFIGS)}",
    )
    parser.add_argument("--long-minutes", default="5,20,60")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
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
        rescore(results, dev_clips() + conv_clips(Path(args.conv_dir)))
        report(results)
        return

    set_results_path(args.out)
    clips = clips_of(args)
    if not clips:
        parser.error(f"no clips: --sets {args.sets}, --conv-dir {args.conv_dir}")
    parts = set(args.only.split(","))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(
        {
            "audio_seconds": sum(c["seconds"] for c in clips),
            "reference_words": {
                s: sum(len(c["text"].split()) for c in clips if c["set"] == s)
                for s in ("read", "conv")
            },
            "machine": {
                "cpus": os.cpu_count(),
                "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
                "CT2_FORCE_CPU_ISA": os.environ.get("CT2_FORCE_CPU_ISA", "(unset)"),
            },
            "command": " ".join(["benchmarks/transcribe.py", *sys.argv[1:]]),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        home = str(Path(args.home).resolve()) if args.home else tmp
        cache = str(Path(home) / "models" / "whisper")
        if "matrix" in parts:
            models = args.models.split(",")
            configs = (
                route_configs(models, args.batch_size)
                if args.matrix == "routes"
                else all_configs(models, [int(b) for b in args.beams.split(",")], args.batch_size)
            )
            configs = [c for c in configs if c.engine in args.engines.split(",")]
            done = {r["label"] for r in results.get("matrix", [])}
            configs = [c for c in configs if args.redo or c.label not in done]
            run_matrix(configs, clips, cache, args.threads, results)
        if "cli" in parts:
            run_cli_part(
                clips, args.cli_configs.split(","), args.threads, args.cli_repeats, home, results
            )
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

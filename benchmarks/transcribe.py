"""Real-time factor of both Whisper engines on the same audio, in one run.

    .venv/bin/python benchmarks/transcribe.py --repeats 3 --threads 2

Builds a test episode by repeating tests/data/jfk.flac (and the demo clips, when
present) to about --seconds of audio. Each engine lives in its own process, as in
production (one engine per process: CTranslate2's and PyTorch's OpenMP thread pools
in one process slow PyTorch down several times). Each process loads its engine once
and warms it up; then `transcribe_file` is timed --repeats times per engine,
alternating engines so that background load hits both alike. Prints seconds of
audio per second of compute (higher is faster): the median per engine and their ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from transcripts import ENGINES, load_audio, load_engine, transcribe_file
from transcripts.audio import write_audio

ROOT = Path(__file__).resolve().parent.parent


def build_episode(seconds: float, folder: Path) -> Path:
    clips = [load_audio(ROOT / "tests" / "data" / "jfk.flac")]
    clips += [load_audio(p) for p in sorted((ROOT / "coldstart" / "demo_assets").glob("*.ogg"))]
    signal = np.concatenate(clips)
    repeats = max(1, int(np.ceil(seconds * 16_000 / signal.size)))
    return write_audio(folder / "episode.flac", np.tile(signal, repeats)[: int(seconds * 16_000)])


_ENGINE = None


def _load(name: str, model: str, cache: str, beam_size: int, threads: int, episode: str) -> None:
    global _ENGINE
    _ENGINE = load_engine(name, model, cache, beam_size, None, threads)
    transcribe_file(episode, _ENGINE)  # warm-up: first-call allocations, tokenizer, mel filters


def _timed(episode: str) -> tuple[float, float, int]:
    started = time.perf_counter()
    transcript = transcribe_file(episode, _ENGINE)
    return transcript.duration, time.perf_counter() - started, len(transcript.text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the test episode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per engine")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--cache-dir", default=None, help="where the openai checkpoint is cached")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        episode = build_episode(args.seconds, Path(tmp))
        cache = args.cache_dir or str(Path(tmp) / "models")
        spawn = multiprocessing.get_context("spawn")
        pools = {
            name: ProcessPoolExecutor(
                1, mp_context=spawn, initializer=_load,
                initargs=(name, args.model, cache, args.beam_size, args.threads, str(episode)),
            )
            for name in sorted(ENGINES)
        }
        rtf: dict[str, list[float]] = {name: [] for name in pools}
        words: dict[str, int] = {}
        duration = 0.0
        try:
            for name, pool in pools.items():  # load and warm up, one engine at a time
                pool.submit(time.sleep, 0).result()
            for _ in range(args.repeats):
                for name, pool in pools.items():
                    duration, elapsed, words[name] = pool.submit(_timed, str(episode)).result()
                    rtf[name].append(duration / elapsed)
        finally:
            for pool in pools.values():
                pool.shutdown()

    medians = {name: statistics.median(values) for name, values in rtf.items()}
    result = {
        "audio_seconds": round(duration, 1),
        "model": args.model,
        "beam_size": args.beam_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "realtime_factor_median": {k: round(v, 2) for k, v in medians.items()},
        "realtime_factor_runs": {k: [round(x, 2) for x in v] for k, v in rtf.items()},
        "words": words,
        "ratio_faster_over_openai": round(medians["faster-whisper"] / medians["openai-whisper"], 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{duration:.0f} s of audio, model {args.model}, beam {args.beam_size}, {args.threads} threads, "
          f"{args.repeats} repeats")
    for name, value in medians.items():
        runs = ", ".join(f"{x:.1f}" for x in rtf[name])
        print(f"  {name:15s} {value:6.1f}x real time (median; runs {runs}; {words[name]} words)")
    print(f"  faster-whisper / openai-whisper = {result['ratio_faster_over_openai']:.2f}")


if __name__ == "__main__":
    main()

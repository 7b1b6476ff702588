"""Encoder throughput and agreement, and vector-search latency, in one run.

Part 1 - texts/s and tokens/s on the catalogue's texts (title + description) for:
plain `SentenceTransformer.encode` fp32 (the reference), the project's `Encoder` in
fp32, bf16 autocast and int8 dynamic quantisation, and ONNX Runtime (fp32 and int8)
over the same weights exported with `torch.onnx`. Variants run round-robin so that
load from other processes hits them alike; each figure is the median over rounds.
A variant is worth adopting when its mean cosine with the reference is >= 0.99 and it
is at least 1.1x faster than the project's fp32.

Part 2 - query latency p50/p99 (one query at a time, through `VectorIndex.search`)
for 100k and 1M random unit 384-d vectors: exact (IDMap2,FlatIP) vs IVF, with the
IVF's recall@10 measured at build time.

    .venv/bin/python benchmarks/embed.py /work/shared/data/apple-podcasts/podcasts_info.json --json out.json
    .venv/bin/python benchmarks/embed.py --texts 64 --sizes 20000      # quick look
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coldstart.content.embeddings import load_encoder, resolve_model_path  # noqa: E402
from coldstart.content.index import VectorIndex  # noqa: E402
from coldstart.core.config import Settings  # noqa: E402


def catalogue_texts(path: Path, n: int) -> list[str]:
    records = json.loads(path.read_text(encoding="utf-8"))
    texts = [
        " ".join(f"{r.get('title') or ''}. {r.get('description') or ''}".split()) for r in records
    ]
    rng = np.random.default_rng(0)
    return [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]


# --- encoders --------------------------------------------------------------------


def reference_encoder(batch: int):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(resolve_model_path("bundled")), device="cpu")
    return lambda texts: model.encode(
        texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True
    )


def project_encoder(precision: str, batch: int):
    settings = Settings()
    settings.embed.precision = precision
    settings.embed.batch_size = batch
    encoder = load_encoder(settings)
    return encoder.encode


class OnnxEncoder:
    """The BERT body exported to ONNX; mean pooling and normalisation as sentence-transformers does."""

    def __init__(self, workdir: Path, quantize: bool, batch: int, threads: int) -> None:
        import onnxruntime as ort

        encoder = load_encoder(Settings())
        self.tokenizer = encoder.model.tokenizer
        self.max_len = encoder.max_tokens
        self.batch = batch
        path = workdir / "minilm.onnx"
        if not path.exists():
            self._export(encoder, path)
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            qpath = workdir / "minilm-int8.onnx"
            if not qpath.exists():
                quantize_dynamic(str(path), str(qpath), weight_type=QuantType.QInt8)
            path = qpath
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @staticmethod
    def _export(encoder, path: Path) -> None:
        bert = encoder.model[0].auto_model

        class Body(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state

        sample = encoder.model.tokenizer(
            ["a sample", "another sample text"], padding=True, return_tensors="pt"
        )
        names = ["input_ids", "attention_mask", "token_type_ids"]
        torch.onnx.export(
            Body(bert).eval(),
            tuple(sample[n] for n in names),
            str(path),
            input_names=names,
            output_names=["hidden"],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "hidden"]},
            opset_version=17,
            dynamo=False,
        )

    def __call__(self, texts: list[str]) -> np.ndarray:
        order = np.argsort(
            [-len(t) for t in texts]
        )  # length-sorted batches, like sentence-transformers
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for lo in range(0, len(texts), self.batch):
            idx = order[lo : lo + self.batch]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_len,
                return_tensors="np",
            )
            feeds = {
                k: enc[k].astype(np.int64)
                for k in ("input_ids", "attention_mask", "token_type_ids")
            }
            hidden = self.session.run(None, feeds)[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


# --- part 1 ------------------------------------------------------------------------


def throughput(
    texts: list[str], rounds: int, batch: int, threads: int, workdir: Path
) -> list[dict]:
    tokens = sum(min(n + 2, 256) for n in load_encoder(Settings()).count_tokens(texts))
    variants = {
        "SentenceTransformer.encode fp32 (reference)": reference_encoder(batch),
        "project fp32": project_encoder("fp32", batch),
        "project bf16 autocast": project_encoder("bf16", batch),
        "project int8 dynamic (torch)": project_encoder("int8", batch),
    }
    try:
        variants["ONNX Runtime fp32"] = OnnxEncoder(workdir, False, batch, threads)
        variants["ONNX Runtime int8 dynamic"] = OnnxEncoder(workdir, True, batch, threads)
    except Exception as exc:  # onnx export needs the `onnx` package (the `bench` extra)
        print(f"ONNX Runtime skipped: {exc}", file=sys.stderr)
    for encode in variants.values():
        encode(texts[:8])  # warm-up: allocations, autotuning
    seconds = {name: [] for name in variants}
    vectors = {}
    for r in range(rounds):
        for name, encode in variants.items():
            t0 = time.perf_counter()
            vectors[name] = np.asarray(encode(texts), dtype=np.float32)
            seconds[name].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    reference = vectors["SentenceTransformer.encode fp32 (reference)"]
    project = float(np.median(seconds["project fp32"]))
    rows = []
    for name, times in seconds.items():
        median = float(np.median(times))
        cos = np.sum(vectors[name] * reference, axis=1)
        rows.append(
            {
                "variant": name,
                "texts_per_s": len(texts) / median,
                "tokens_per_s": tokens / median,
                "speedup_vs_project_fp32": project / median,
                "cosine_mean": float(cos.mean()),
                "cosine_min": float(cos.min()),
                "adoptable": bool(cos.mean() >= 0.99 and project / median >= 1.1),
            }
        )
    return rows


# --- part 2 ------------------------------------------------------------------------


def latency(
    n: int, queries: int, nprobes: tuple[int, ...] = (16, 64, 256), dim: int = 384
) -> list[dict]:
    """Exact vs IVF at several nprobe on random unit vectors, one query at a time.

    Random vectors have no cluster structure, the worst case for IVF; recall is measured
    here against exact search for the same queries.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((queries, dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    keys = [f"v{i}" for i in range(n)]

    def timed(index) -> tuple[list[float], list[set]]:
        index.search(q[:5], 10)  # warm-up
        times, found = [], []
        for row in q:
            t0 = time.perf_counter()
            hits = index.search(row, 10)[0]
            times.append(time.perf_counter() - t0)
            found.append({k for k, _ in hits})
        return times, found

    rows = []
    t0 = time.perf_counter()
    exact = VectorIndex.build(keys, x, model_id="random", unit="bench", exact_max=n)
    build = time.perf_counter() - t0
    times, truth = timed(exact)
    rows.append(
        {
            "vectors": n,
            "index": exact.index_type,
            "nlist": None,
            "nprobe": None,
            "build_s": build,
            "p50_ms": float(np.percentile(times, 50) * 1000),
            "p99_ms": float(np.percentile(times, 99) * 1000),
            "recall_at_10": 1.0,
        }
    )
    print(f"{n} exact: p50 {rows[-1]['p50_ms']:.2f} ms", file=sys.stderr)
    del exact
    gc.collect()
    t0 = time.perf_counter()
    ivf = VectorIndex.build(
        keys, x, model_id="random", unit="bench", exact_max=0, nprobe=nprobes[0], target_recall=0.0
    )
    build = time.perf_counter() - t0
    for nprobe in nprobes:
        ivf.index.nprobe = min(nprobe, ivf.index.nlist)
        times, found = timed(ivf)
        recall = float(np.mean([len(f & t) / 10 for f, t in zip(found, truth)]))
        rows.append(
            {
                "vectors": n,
                "index": ivf.index_type,
                "nlist": int(ivf.index.nlist),
                "nprobe": int(ivf.index.nprobe),
                "build_s": build,
                "p50_ms": float(np.percentile(times, 50) * 1000),
                "p99_ms": float(np.percentile(times, 99) * 1000),
                "recall_at_10": recall,
            }
        )
        print(
            f"{n} ivf nprobe {nprobe}: p50 {rows[-1]['p50_ms']:.2f} ms recall {recall:.3f}",
            file=sys.stderr,
        )
    del ivf
    gc.collect()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "catalogue", nargs="?", type=Path, default=ROOT / "tests/data/apple-podcasts-sample.json"
    )
    parser.add_argument(
        "--texts", type=int, default=128, help="Catalogue texts to encode per variant and round."
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-encoders", action="store_true", help="Only the index latency part.")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch / ONNX Runtime / faiss threads (0: torch's default, one per core).",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        import faiss

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    threads = torch.get_num_threads()
    texts = catalogue_texts(args.catalogue, args.texts)
    encoders = []
    if not args.skip_encoders:
        with tempfile.TemporaryDirectory() as tmp:
            encoders = throughput(texts, args.rounds, args.batch, threads, Path(tmp))
    search = [row for n in args.sizes for row in latency(n, args.queries)]

    print(
        f"\nencoders: {len(texts)} texts from {args.catalogue.name}, batch {args.batch}, "
        f"{threads} threads, median of {args.rounds} rounds, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(
        "| variant | texts/s | tokens/s | speed-up vs project fp32 | cosine mean | cosine min | adopt? |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in encoders:
        print(
            f"| {r['variant']} | {r['texts_per_s']:.1f} | {r['tokens_per_s']:.0f} | "
            f"{r['speedup_vs_project_fp32']:.2f}x | {r['cosine_mean']:.5f} | {r['cosine_min']:.5f} | "
            f"{'yes' if r['adoptable'] else 'no'} |"
        )
    print(f"\nsearch: {args.queries} single queries, k=10, random unit 384-d vectors")
    print("| vectors | index | nlist / nprobe | build s | p50 ms | p99 ms | recall@10 |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in search:
        lists = f"{r['nlist']} / {r['nprobe']}" if r["nlist"] else "-"
        print(
            f"| {r['vectors']:,} | {r['index']} | {lists} | {r['build_s']:.1f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['recall_at_10']:.3f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "encoders": encoders,
                    "search": search,
                    "threads": threads,
                    "texts": len(texts),
                    "load_average": os.getloadavg()[0],
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()

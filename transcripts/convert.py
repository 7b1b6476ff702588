"""Convert a CTranslate2 Whisper model (model.bin) into an openai-whisper checkpoint.

CTranslate2's model.bin (written by `ModelSpec._serialize`, binary version 6) is:
uint32 version, string spec name, uint32 revision, uint32 variable count, then per
variable: string name, uint8 rank, uint32 dims, uint8 dtype id, uint32 byte count,
raw bytes; then uint32 alias count and (alias, target) string pairs. A string is a
uint16 length (including a trailing NUL) followed by the UTF-8 bytes and the NUL.

The result is the dict `whisper.load_model(path)` accepts:
`{"dims": {...}, "model_state_dict": {...}}`.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import numpy as np
import torch

from transcripts.types import ModelError

__all__ = ["read_ct2_model", "ct2_to_openai_checkpoint", "ensure_openai_checkpoint"]

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_SUPPORTED_VERSIONS = (5, 6)
_CONVERTER_VERSION = 1


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.offset, self.path = data, 0, path

    def unpack(self, fmt: str):
        try:
            values = struct.unpack_from("<" + fmt, self.data, self.offset)
        except struct.error as exc:
            raise ModelError(f"{self.path}: truncated CTranslate2 model ({exc})") from exc
        self.offset += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        length = self.unpack("H")
        raw = self.data[self.offset : self.offset + length - 1]
        self.offset += length
        return raw.decode("utf-8")


def read_ct2_model(path: Path | str) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable name: array}) of a CTranslate2 model.bin; aliases resolved."""
    path = Path(path)
    reader = _Reader(path.read_bytes(), path)
    version = reader.unpack("I")
    if version not in _SUPPORTED_VERSIONS:
        raise ModelError(f"{path}: unsupported CTranslate2 binary version {version}")
    spec = reader.string()
    reader.unpack("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        rank = reader.unpack("B")
        shape = tuple(reader.unpack("I") for _ in range(rank))
        type_id = reader.unpack("B")
        nbytes = reader.unpack("I")
        if type_id not in _DTYPES:
            raise ModelError(f"{path}: variable {name} has unsupported dtype id {type_id}")
        raw = reader.data[reader.offset : reader.offset + nbytes]
        reader.offset += nbytes
        if len(raw) != nbytes:
            raise ModelError(f"{path}: truncated CTranslate2 model (variable {name})")
        variables[name] = np.frombuffer(raw, dtype=_DTYPES[type_id]).reshape(shape)
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    return spec, variables


def _float(variables: dict[str, np.ndarray], name: str) -> torch.Tensor:
    """A weight as float32; int8 weights are dequantized with their per-row `*_scale`."""
    value = variables[name]
    if value.dtype == np.int8:
        scale = variables.get(name.removesuffix("weight") + "weight_scale")
        if scale is None:
            raise ModelError(f"int8 variable {name} has no weight_scale")
        value = value.astype(np.float32) / scale.astype(np.float32).reshape(
            -1, *([1] * (value.ndim - 1))
        )
    return torch.from_numpy(np.array(value, dtype=np.float32))


def _linear(v, src: str, dst: str, out: dict, bias: bool = True) -> None:
    out[f"{dst}.weight"] = _float(v, f"{src}/weight")
    if bias:
        out[f"{dst}.bias"] = _float(v, f"{src}/bias")


def _norm(v, src: str, dst: str, out: dict) -> None:
    out[f"{dst}.weight"] = _float(v, f"{src}/gamma")
    out[f"{dst}.bias"] = _float(v, f"{src}/beta")


def _self_attention(v, src: str, dst: str, out: dict) -> None:
    # CTranslate2 fuses q, k, v into linear_0; whisper's key projection has no bias
    # (the converter fills zeros there), so that slice is dropped.
    w = _float(v, f"{src}/linear_0/weight")
    b = _float(v, f"{src}/linear_0/bias")
    q_w, k_w, v_w = w.chunk(3, dim=0)
    q_b, _, v_b = b.chunk(3, dim=0)
    out.update(
        {
            f"{dst}.query.weight": q_w.clone(),
            f"{dst}.query.bias": q_b.clone(),
            f"{dst}.key.weight": k_w.clone(),
            f"{dst}.value.weight": v_w.clone(),
            f"{dst}.value.bias": v_b.clone(),
        }
    )
    _linear(v, f"{src}/linear_1", f"{dst}.out", out)
    _norm(v, f"{src}/layer_norm", f"{dst}_ln", out)


def _cross_attention(v, src: str, dst: str, out: dict) -> None:
    # linear_0 is the query, linear_1 the fused key/value, linear_2 the output.
    _linear(v, f"{src}/linear_0", f"{dst}.query", out)
    w = _float(v, f"{src}/linear_1/weight")
    b = _float(v, f"{src}/linear_1/bias")
    k_w, v_w = w.chunk(2, dim=0)
    _, v_b = b.chunk(2, dim=0)
    out.update(
        {
            f"{dst}.key.weight": k_w.clone(),
            f"{dst}.value.weight": v_w.clone(),
            f"{dst}.value.bias": v_b.clone(),
        }
    )
    _linear(v, f"{src}/linear_2", f"{dst}.out", out)
    _norm(v, f"{src}/layer_norm", f"{dst}_ln", out)


def _mlp(v, src: str, dst: str, out: dict) -> None:
    _linear(v, f"{src}/linear_0", f"{dst}.mlp.0", out)
    _linear(v, f"{src}/linear_1", f"{dst}.mlp.2", out)
    _norm(v, f"{src}/layer_norm", f"{dst}.mlp_ln", out)


def _layer_count(variables: dict, prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return len({m.group(1) for name in variables if (m := pattern.match(name))})


def ct2_to_openai_checkpoint(model_dir: Path | str) -> dict:
    """The openai-whisper checkpoint dict for a CTranslate2 Whisper model directory."""
    model_dir = Path(model_dir)
    spec, v = read_ct2_model(model_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ModelError(f"{model_dir}: expected a WhisperSpec model, found {spec!r}")
    n_audio_layer = _layer_count(v, "encoder")
    n_text_layer = _layer_count(v, "decoder")
    sd: dict[str, torch.Tensor] = {}

    sd["encoder.positional_embedding"] = _float(v, "encoder/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        _linear(v, f"encoder/{conv}", f"encoder.{conv}", sd)
    for i in range(n_audio_layer):
        _self_attention(v, f"encoder/layer_{i}/self_attention", f"encoder.blocks.{i}.attn", sd)
        _mlp(v, f"encoder/layer_{i}/ffn", f"encoder.blocks.{i}", sd)
    _norm(v, "encoder/layer_norm", "encoder.ln_post", sd)

    sd["decoder.token_embedding.weight"] = _float(v, "decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = _float(v, "decoder/position_encodings/encodings")
    for i in range(n_text_layer):
        _self_attention(v, f"decoder/layer_{i}/self_attention", f"decoder.blocks.{i}.attn", sd)
        _cross_attention(v, f"decoder/layer_{i}/attention", f"decoder.blocks.{i}.cross_attn", sd)
        _mlp(v, f"decoder/layer_{i}/ffn", f"decoder.blocks.{i}", sd)
    _norm(v, "decoder/layer_norm", "decoder.ln", sd)

    n_vocab, n_text_state = sd["decoder.token_embedding.weight"].shape
    n_audio_state, n_mels, _ = sd["encoder.conv1.weight"].shape
    dims = {
        "n_mels": int(n_mels),
        "n_audio_ctx": int(sd["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": int(v["encoder/num_heads"].item()),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(n_vocab),
        "n_text_ctx": int(sd["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(n_text_state),
        "n_text_head": int(v["decoder/num_heads"].item()),
        "n_text_layer": n_text_layer,
    }
    # Stored as float16 like the source; load_state_dict casts into float32 parameters.
    state = {name: tensor.to(torch.float16).contiguous() for name, tensor in sd.items()}
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    return {
        "dims": dims,
        "model_state_dict": state,
        "alignment_heads": config.get("alignment_heads"),
    }


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_openai_checkpoint(model_dir: Path | str, target: Path | str) -> Path:
    """Convert once: reuse `target` when its manifest matches the source weights.

    Writes `target` (the .pt checkpoint) and `target.with_suffix('.json')` (a manifest
    with the source path, its sha256, the dims and the converter version).
    """
    model_dir, target = Path(model_dir), Path(target)
    manifest_path = target.with_suffix(".json")
    source = model_dir / "model.bin"
    if not source.exists():
        raise ModelError(f"{model_dir}: no model.bin (not a CTranslate2 model directory)")
    source_sha = _file_digest(source)
    if target.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (
            manifest.get("source_sha256") == source_sha
            and manifest.get("converter_version") == _CONVERTER_VERSION
        ):
            return target
    checkpoint = ct2_to_openai_checkpoint(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".pt.partial")
    torch.save(checkpoint, partial)
    partial.replace(target)  # atomic: a crash never leaves a half-written checkpoint
    manifest = {
        "source": str(model_dir),
        "source_sha256": source_sha,
        "converter_version": _CONVERTER_VERSION,
        "dims": checkpoint["dims"],
        "format": "openai-whisper checkpoint (float16 state dict)",
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return target

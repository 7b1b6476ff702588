"""CTranslate2 -> openai-whisper conversion of the bundled tiny.en weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from transcripts import ModelError, resolve_model
from transcripts.convert import (
    _float,
    ct2_to_openai_checkpoint,
    ensure_openai_checkpoint,
    read_ct2_model,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return resolve_model("tiny.en", tmp_path_factory.getbasetemp() / "whisper-models")


@pytest.fixture(scope="module")
def ct2(tiny):
    return read_ct2_model(tiny.path / "model.bin")


@pytest.fixture(scope="module")
def checkpoint(tiny):
    return ct2_to_openai_checkpoint(tiny.path)


def test_reads_every_variable_of_the_bundled_model(ct2):
    spec, variables = ct2
    assert spec == "WhisperSpec"
    assert variables["decoder/embeddings/weight"].shape == (51864, 384)
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["encoder/layer_0/self_attention/linear_0/weight"].shape == (1152, 384)
    # The alias (tied output projection) points at the embedding.
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]
    assert int(variables["decoder/num_heads"]) == 6


def test_checkpoint_matches_whispers_own_state_dict(checkpoint):
    dims = checkpoint["dims"]
    assert dims == {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 384,
        "n_audio_head": 6,
        "n_audio_layer": 4,
        "n_vocab": 51864,
        "n_text_ctx": 448,
        "n_text_state": 384,
        "n_text_head": 6,
        "n_text_layer": 4,
    }
    reference = Whisper(ModelDimensions(**dims)).state_dict()
    state = checkpoint["model_state_dict"]
    assert set(state) == set(reference)
    for name, tensor in reference.items():
        assert state[name].shape == tensor.shape, name


def test_fused_attention_is_split_into_query_key_value(ct2, checkpoint):
    _, v = ct2
    state = checkpoint["model_state_dict"]
    fused = torch.cat(
        [state[f"decoder.blocks.1.attn.{p}.weight"] for p in ("query", "key", "value")]
    )
    np.testing.assert_array_equal(
        fused.numpy(), v["decoder/layer_1/self_attention/linear_0/weight"]
    )
    kv = torch.cat([state[f"decoder.blocks.1.cross_attn.{p}.weight"] for p in ("key", "value")])
    np.testing.assert_array_equal(kv.numpy(), v["decoder/layer_1/attention/linear_1/weight"])
    # whisper's key projection has no bias; the converter's zero slice is dropped.
    assert "decoder.blocks.1.attn.key.bias" not in state
    assert not v["encoder/layer_2/self_attention/linear_0/bias"][384:768].any()


def test_int8_weights_are_dequantized_with_their_scale():
    weight = np.array([[100, -50], [20, 10]], dtype=np.int8)
    scale = np.array([50.0, 10.0], dtype=np.float32)
    out = _float({"x/weight": weight, "x/weight_scale": scale}, "x/weight")
    np.testing.assert_allclose(out.numpy(), [[2.0, -1.0], [2.0, 1.0]])


def test_converts_once_and_whisper_load_model_accepts_it(tiny, tmp_path):
    target = tmp_path / "tiny.en.pt"
    assert ensure_openai_checkpoint(tiny.path, target) == target
    manifest = json.loads(target.with_suffix(".json").read_text())
    assert manifest["dims"]["n_vocab"] == 51864 and len(manifest["source_sha256"]) == 64
    first = target.stat().st_mtime_ns
    ensure_openai_checkpoint(tiny.path, target)
    assert target.stat().st_mtime_ns == first  # reused, not rewritten
    model = whisper.load_model(str(target), device="cpu")
    assert model.dims.n_text_layer == 4 and not model.is_multilingual


def test_truncated_model_is_a_clear_error(tiny, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes((tiny.path / "model.bin").read_bytes()[:5000])
    with pytest.raises(ModelError, match="truncated"):
        ct2_to_openai_checkpoint(broken)


def test_unknown_model_name_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'large-v9'"):
        resolve_model("large-v9", tmp_path)

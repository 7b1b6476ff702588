"""Word error rate, the way Whisper's authors measure it.

Both texts go through openai-whisper's `EnglishTextNormalizer` (numbers, spelling
variants, punctuation, fillers), then jiwer counts substitutions, deletions and
insertions against the reference's word count.

Real audio never decodes bit-for-bit alike on every CPU (int8 kernels differ between
AVX-512 subsets), so tests and benchmarks compare transcripts with this, within a
tolerance, instead of asserting an exact decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import jiwer
from whisper.normalizers import EnglishTextNormalizer

__all__ = ["normalize_english", "word_error_rate", "corpus_word_error_rate"]


@lru_cache(maxsize=1)
def _normalizer():
    return EnglishTextNormalizer()


def normalize_english(text: str) -> str:
    """Whisper's English normalisation: lower case, no punctuation, canonical numbers."""
    return _normalizer()(text)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of one hypothesis against one reference, after normalising both."""
    return corpus_word_error_rate([reference], [hypothesis])


def corpus_word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Total edits over total reference words (the corpus-level WER Whisper reports)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalize_english(r) for r in references]
    hyps = [normalize_english(h) for h in hypotheses]
    if not any(r.strip() for r in refs):
        raise ValueError("the references hold no words to score against")
    # jiwer refuses empty references; pairs with an empty reference add only insertions.
    scored = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    insertions = sum(len(h.split()) for r, h in zip(refs, hyps) if not r.strip())
    out = jiwer.process_words([r for r, _ in scored], [h for _, h in scored])
    edits = out.substitutions + out.deletions + out.insertions + insertions
    return edits / sum(len(r.split()) for r, _ in scored)

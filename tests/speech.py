"""The reference clip and the tolerance every test on real speech uses.

Real audio never decodes bit-for-bit alike on every CPU (int8 kernels differ between
AVX-512 subsets), so tests compare a transcript with the reference by word error rate
(Whisper's normaliser) within a bound, never by exact words."""

from __future__ import annotations

from pathlib import Path

from transcripts.wer import word_error_rate

JFK = Path(__file__).parent / "data" / "jfk.flac"
JFK_TEXT = "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country."
# One wrong word in the 22 of the reference.
MAX_WER = 0.1


def sounds_like_jfk(text: str, repeats: int = 1) -> bool:
    """The transcript is `repeats` readings of the reference, within the tolerance."""
    return word_error_rate(" ".join([JFK_TEXT] * repeats), text) <= MAX_WER

"""Verbaliser: generated text -> liked and disliked genre sets, never raising on bad text.

Expected text: ``Liked Genres: A, B. Not Liked Genres: C`` (``None`` for an empty side). The
parser finds the two section headers case-insensitively anywhere in the text, splits each section
on commas / semicolons / ``and`` / ``|``, normalises genre names, and counts every problem
(unknown genre, repeated genre, missing section, genre on both sides) instead of failing.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterable, Sequence

import numpy as np

from persoma.data import genres as genres_lib

_LIKED = re.compile(r"(?<![a-z])liked\s+genres?\s*:", re.IGNORECASE)
_NOT_LIKED = re.compile(r"(?:not|dis)[\s-]*liked\s+genres?\s*:", re.IGNORECASE)
_SPLIT = re.compile(r"\s*(?:,|;|\||\band\b|\n)\s*", re.IGNORECASE)
_EMPTY_WORDS = {"", "none", "n/a", "na", "nothing", "-"}


@dataclasses.dataclass(frozen=True)
class Verbalized:
  """Parsed prediction.

  Attributes:
    liked, disliked: canonical genres, first-occurrence order, de-duplicated.
    unknown: tokens that are not genres.
    repeats: genres given more than once on a side.
    conflicts: genres on both sides (kept only on the liked side).
    missing_sections: 0-2 sections absent from the text.
  """

  liked: tuple[str, ...]
  disliked: tuple[str, ...]
  unknown: tuple[str, ...] = ()
  repeats: int = 0
  conflicts: int = 0
  missing_sections: int = 0


def _parse_side(text: str) -> tuple[list[str], list[str], int]:
  # A header repeated inside a section ('Liked Genres: Liked Genres: A') is a separator.
  text = _LIKED.sub(",", _NOT_LIKED.sub(",", text)).strip().rstrip(".").strip()
  found: list[str] = []
  unknown: list[str] = []
  repeats = 0
  for tok in _SPLIT.split(text):
    tok = tok.strip().strip(".").strip()
    if tok.lower() in _EMPTY_WORDS:
      continue
    g = genres_lib.normalize_genre(tok)
    if g is None:
      unknown.append(tok)
    elif g in found:
      repeats += 1
    else:
      found.append(g)
  return found, unknown, repeats


def parse(text: str) -> Verbalized:
  """Parses one generated string (any input; non-strings count as two missing sections)."""
  if not isinstance(text, str):
    return Verbalized((), (), missing_sections=2)
  nots = [(m.start(), m.end(), "disliked") for m in _NOT_LIKED.finditer(text)]
  # A 'Liked Genres:' match inside 'Not Liked Genres:' is not a liked header.
  likes = [(m.start(), m.end(), "liked") for m in _LIKED.finditer(text)
           if not any(a <= m.start() < b for a, b, _ in nots)]
  headers = sorted(nots + likes)
  sections = {"liked": [], "disliked": []}
  for i, (_, end, kind) in enumerate(headers):
    stop = headers[i + 1][0] if i + 1 < len(headers) else len(text)
    sections[kind].append(text[end:stop])
  missing = (not likes) + (not nots)
  liked_text = ",".join(sections["liked"])
  disliked_text = ",".join(sections["disliked"])
  liked, unk1, rep1 = _parse_side(liked_text)
  disliked, unk2, rep2 = _parse_side(disliked_text)
  conflicts = sum(1 for g in disliked if g in liked)
  disliked = [g for g in disliked if g not in liked]
  return Verbalized(tuple(liked), tuple(disliked), tuple(unk1 + unk2), rep1 + rep2, conflicts,
                    missing)


def to_indicator(liked: Iterable[str], disliked: Iterable[str]) -> np.ndarray:
  """``[38]`` int8 indicator over persoma.data.genres.CLASSES (liked first, then disliked)."""
  out = np.zeros(genres_lib.NUM_CLASSES, dtype=np.int8)
  for g in liked:
    out[genres_lib.GENRE_INDEX[g]] = 1
  for g in disliked:
    out[genres_lib.NUM_GENRES + genres_lib.GENRE_INDEX[g]] = 1
  return out


def indicator_matrix(pairs: Sequence[tuple[Iterable[str], Iterable[str]]]) -> np.ndarray:
  """``[n, 38]`` int8 indicators of ``(liked, disliked)`` pairs."""
  out = np.zeros((len(pairs), genres_lib.NUM_CLASSES), dtype=np.int8)
  for i, (liked, disliked) in enumerate(pairs):
    out[i] = to_indicator(liked, disliked)
  return out


def parse_many(texts: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
  """``([n, 38] int8 indicators, problem counts)`` for many generated strings.

  Counts: ``unknown_genres``, ``repeats``, ``conflicts``, ``missing_sections``,
  ``unparseable`` (texts with neither section).
  """
  parsed = [parse(t) for t in texts]
  counts = collections.Counter()
  for p in parsed:
    counts["unknown_genres"] += len(p.unknown)
    counts["repeats"] += p.repeats
    counts["conflicts"] += p.conflicts
    counts["missing_sections"] += p.missing_sections
    counts["unparseable"] += int(p.missing_sections == 2)
  keys = ("unknown_genres", "repeats", "conflicts", "missing_sections", "unparseable")
  return indicator_matrix([(p.liked, p.disliked) for p in parsed]), {k: counts[k] for k in keys}

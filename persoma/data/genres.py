"""The 19 canonical MovieLens genres and name normalisation across releases.

Releases spell genres differently (ml-100k/ml-1m: ``Children's``; ml-latest: ``Children``, plus
``IMAX`` and ``(no genres listed)``). Everything in persoma uses the ml-latest names in the fixed
order of :data:`GENRES`; the 38 metric classes are ``liked:<g>`` then ``disliked:<g>``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
NUM_GENRES = len(GENRES)
GENRE_INDEX: dict[str, int] = {g: i for i, g in enumerate(GENRES)}

#: The 38 metric classes: liked genres first, then disliked genres, each in GENRES order.
CLASSES: tuple[str, ...] = tuple(f"liked:{g}" for g in GENRES) + tuple(
    f"disliked:{g}" for g in GENRES)
NUM_CLASSES = len(CLASSES)


def _key(name: str) -> str:
  return "".join(name.lower().split()).replace("_", "-")


_ALIASES: dict[str, str | None] = {_key(g): g for g in GENRES}
_ALIASES.update({
    _key("Children's"): "Children",
    _key("Childrens"): "Children",
    _key("Film Noir"): "Film-Noir",
    _key("FilmNoir"): "Film-Noir",
    _key("Science Fiction"): "Sci-Fi",
    _key("SciFi"): "Sci-Fi",
    _key("(no genres listed)"): None,
    _key("Unknown"): None,
})


def normalize_genre(name: str) -> str | None:
  """Canonical genre name for ``name`` (case/space-insensitive), or None if not a genre.

  ``Children's`` -> ``Children``; ``(no genres listed)``, ``unknown`` and any other
  unrecognised name -> None.
  """
  if not isinstance(name, str):
    return None
  return _ALIASES.get(_key(name))


def normalize_genres(names: Iterable[str]) -> tuple[str, ...]:
  """Canonical, de-duplicated genres of one movie, in GENRES order (unknown names dropped)."""
  found = {normalize_genre(n) for n in names}
  found.discard(None)
  return tuple(sorted(found, key=GENRE_INDEX.__getitem__))  # type: ignore[arg-type]


def unknown_genres(field: str, sep: str = "|") -> list[str]:
  """Names in a MovieLens ``A|B|C`` genre field that are neither a genre, an alias of one, nor
  an explicit 'no genre' marker (``(no genres listed)``, ``unknown``): e.g. a misspelling."""
  return [n.strip() for n in field.split(sep)
          if n.strip() and _key(n) not in _ALIASES]


def parse_genre_field(field: str, sep: str = "|") -> tuple[str, ...]:
  """Canonical genres from a MovieLens ``A|B|C`` genre field."""
  field = field.strip()
  if not field:
    return ()
  return normalize_genres(field.split(sep))


def genre_matrix(genres: Iterable[Iterable[str]]) -> np.ndarray:
  """Indicator matrix ``[M, 19]`` bool of canonical genre tuples (one row per movie)."""
  rows = list(genres)
  out = np.zeros((len(rows), NUM_GENRES), dtype=bool)
  for i, gs in enumerate(rows):
    for g in gs:
      out[i, GENRE_INDEX[g]] = True
  return out

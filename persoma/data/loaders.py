"""Parsers for MovieLens release files in every official layout, plus a descriptions CSV.

Layouts (``persoma.data.releases`` finds the folder and detects which one it holds):
  * ``100k``: ``u.data`` (tab-separated ``user item rating timestamp``) and ``u.item``
    (``|``-separated, latin-1, 19 genre flags; names from ``u.genre`` when present).
  * ``dat`` (ml-1m, ml-10m): ``ratings.dat`` ``UserID::MovieID::Rating::Timestamp`` and
    ``movies.dat`` ``MovieID::Title::Genres``.
  * ``csv`` (ml-latest-small, ml-latest, ml-20m, ml-25m, ml-32m): ``ratings.csv`` and
    ``movies.csv`` with headers.

Ratings are parsed with numpy's C reader; only when that fails is the file re-read line by line
to name the offending file and line (``strict=True`` raises, ``strict=False`` skips and counts).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from persoma.data import genres as genres_lib

# ml-100k u.item flag order (used when u.genre is absent).
_ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                  "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                  "Romance", "Sci-Fi", "Thriller", "War", "Western")


class DataFormatError(ValueError):
  """A malformed input file; the message names the file and line."""


def _read_text(path: Path) -> str:
  """File text as UTF-8, falling back to latin-1 (ml-100k and ml-1m are latin-1)."""
  if not path.is_file():
    raise FileNotFoundError(f"missing MovieLens file: {path}")
  raw = path.read_bytes()
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    return raw.decode("latin-1")


# ----------------------------------------------------------------------------------------------
# Ratings
# ----------------------------------------------------------------------------------------------


def _check_rows(table: np.ndarray) -> np.ndarray:
  """Row mask of well-formed ``[n, 4]`` float64 rows (integral ids/timestamps, rating 0-5)."""
  ids_ok = np.all(table[:, [0, 1, 3]] == np.floor(table[:, [0, 1, 3]]), axis=1)
  rating = table[:, 2]
  with np.errstate(invalid="ignore"):
    rating_ok = (rating >= 0) & (rating <= 5)
  return ids_ok & rating_ok & np.isfinite(table[:, [0, 1, 3]]).all(axis=1)


def _raise_nonfinite(path: Path, rating: np.ndarray, first_line: int) -> None:
  bad = np.flatnonzero(~np.isfinite(rating))
  if bad.size:
    raise DataFormatError(
        f"{path}: {bad.size} non-finite rating(s), first in data row {int(bad[0]) + 1} "
        f"(file line ~{int(bad[0]) + first_line}): {rating[bad[0]]!r}")


def parse_ratings(path: str | os.PathLike[str], sep: str, *, header: bool = False,
                  strict: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                int]:
  """Reads a 4-column ``user sep movie sep rating sep timestamp`` file.

  Returns:
    ``(user_ids [R] int64, movie_ids [R] int64, ratings [R] float32, timestamps [R] int64,
    skipped_lines)``. Non-finite ratings always raise; other malformed lines raise with file and
    line when ``strict``, else are skipped and counted.
  """
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"missing MovieLens ratings file: {path}")
  data = path.read_bytes()
  first_line = 2 if header else 1
  if header:
    data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
  if not data.strip():
    empty = np.zeros(0, np.int64)
    return empty, empty.copy(), np.zeros(0, np.float32), empty.copy(), 0
  orig = data
  delim = sep.encode()
  if len(delim) > 1:
    data = data.replace(delim, b"\t")
    delim = b"\t"
  table = None
  try:
    table = np.loadtxt(io.BytesIO(data), delimiter=delim.decode(), dtype=np.float64, ndmin=2,
                       comments=None)
    if table.size == 0:
      table = np.zeros((0, 4))
    if table.shape[1] != 4:
      table = None
  except ValueError:
    table = None
  if table is not None:
    _raise_nonfinite(path, table[:, 2], first_line)
    ok = _check_rows(table)
    if ok.all() and not data.count(b"\n\n") and not data.startswith(b"\n"):
      return (table[:, 0].astype(np.int64), table[:, 1].astype(np.int64),
              table[:, 2].astype(np.float32), table[:, 3].astype(np.int64), 0)
  return _parse_ratings_slow(path, orig.decode("latin-1"), sep, first_line, strict)


def _parse_ratings_slow(path: Path, text: str, delim: str, first_line: int,
                        strict: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                               int]:
  """Line-by-line fallback that names the first bad line (or counts skips)."""
  rows: list[tuple[int, int, float, int]] = []
  skipped = 0
  for lineno, line in enumerate(text.split("\n"), start=first_line):
    line = line.strip()
    if not line:
      continue
    parts = line.split(delim)
    problem = None
    if len(parts) != 4:
      problem = f"expected 4 fields, got {len(parts)}"
    else:
      try:
        user, movie, ts = int(parts[0]), int(parts[1]), int(float(parts[3]))
        rating = float(parts[2])
      except ValueError as e:
        problem = f"cannot parse: {e}"
      else:
        if not np.isfinite(rating):
          raise DataFormatError(f"{path}:{lineno}: non-finite rating {parts[2]!r}")
        if not 0 <= rating <= 5:
          problem = f"rating {rating} outside 0-5 stars"
    if problem is not None:
      if strict:
        raise DataFormatError(f"{path}:{lineno}: {problem}: {line[:120]!r} "
                              "(pass strict=False to skip malformed lines)")
      skipped += 1
      continue
    rows.append((user, movie, rating, ts))
  arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
  return (arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2].astype(np.float32),
          arr[:, 3].astype(np.int64), skipped)


# ----------------------------------------------------------------------------------------------
# Movies
# ----------------------------------------------------------------------------------------------

Movies = tuple[list[int], list[str], list[tuple[str, ...]]]


def _check_genres(path: Path, lineno: int, field: str, line: str) -> None:
  """Strict mode: a genre field naming no known genre (a misspelling) is an error."""
  unknown = genres_lib.unknown_genres(field)
  if unknown:
    _bad(path, lineno, f"unknown genre(s) {unknown} (known: {', '.join(genres_lib.GENRES)})",
         line, strict=True)


def _bad(path: Path, lineno: int, problem: str, line: str, strict: bool) -> None:
  if strict:
    raise DataFormatError(f"{path}:{lineno}: {problem}: {line[:120]!r} "
                          "(pass strict=False to skip malformed lines)")


def parse_movies_dat(path: str | os.PathLike[str], *,
                     strict: bool = True) -> tuple[Movies, int]:
  """``MovieID::Title::Genres`` (ml-1m, ml-10m). Returns ((ids, titles, genres), skipped)."""
  path = Path(path)
  ids, titles, gens, skipped = [], [], [], 0
  for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
    if not line.strip():
      continue
    parts = line.split("::")
    if len(parts) != 3 or not parts[0].strip().isdigit():
      _bad(path, lineno, "expected 'MovieID::Title::Genres'", line, strict)
      skipped += 1
      continue
    if strict:
      _check_genres(path, lineno, parts[2], line)
    ids.append(int(parts[0]))
    titles.append(parts[1].strip())
    gens.append(genres_lib.parse_genre_field(parts[2]))
  return (ids, titles, gens), skipped


def parse_movies_csv(path: str | os.PathLike[str], *,
                     strict: bool = True) -> tuple[Movies, int]:
  """``movieId,title,genres`` CSV with header (ml-latest*, ml-20m, ml-25m)."""
  path = Path(path)
  reader = csv.reader(io.StringIO(_read_text(path)))
  header = next(reader, None)
  need = ("movieId", "title", "genres")
  if header is None or any(c not in header for c in need):
    raise DataFormatError(f"{path}:1: header must contain {need}, got {header}")
  ci = [header.index(c) for c in need]
  ids, titles, gens, skipped = [], [], [], 0
  for row in reader:
    lineno = reader.line_num
    if not row:
      continue
    if len(row) != len(header) or not row[ci[0]].strip().isdigit():
      _bad(path, lineno, f"expected {len(header)} fields {header}", ",".join(row), strict)
      skipped += 1
      continue
    if strict:
      _check_genres(path, lineno, row[ci[2]], ",".join(row))
    ids.append(int(row[ci[0]]))
    titles.append(row[ci[1]].strip())
    gens.append(genres_lib.parse_genre_field(row[ci[2]]))
  return (ids, titles, gens), skipped


def parse_movies_100k(path: str | os.PathLike[str], *, genre_file: str | os.PathLike[str] | None
                      = None, strict: bool = True) -> tuple[Movies, int]:
  """ml-100k ``u.item``: ``id|title|date|video date|url|<19 genre flags>``."""
  path = Path(path)
  names = list(_ML100K_GENRES)
  if genre_file is not None and Path(genre_file).is_file():
    pairs = [ln.split("|") for ln in _read_text(Path(genre_file)).splitlines() if ln.strip()]
    names = [p[0] for p in sorted(pairs, key=lambda p: int(p[1]))]
  ids, titles, gens, skipped = [], [], [], 0
  for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
    if not line.strip():
      continue
    parts = line.split("|")
    flags = parts[5:]
    if (len(parts) < 5 + len(names) or not parts[0].strip().isdigit()
        or any(f not in ("0", "1") for f in flags[:len(names)])):
      _bad(path, lineno, f"expected 'id|title|date|video|url|' + {len(names)} 0/1 flags",
           line, strict)
      skipped += 1
      continue
    ids.append(int(parts[0]))
    titles.append(parts[1].strip())
    gens.append(genres_lib.normalize_genres(n for n, f in zip(names, flags) if f == "1"))
  return (ids, titles, gens), skipped


# ----------------------------------------------------------------------------------------------
# Descriptions
# ----------------------------------------------------------------------------------------------

_DESCRIPTION_COLUMNS = ("overview", "description", "plot", "summary")


def load_descriptions(path: str | os.PathLike[str], *, strict: bool = True) -> dict[int, str]:
  """``{movieId: description}`` from a CSV with a ``movieId`` and an ``overview`` column.

  Empty descriptions are left out. A missing column raises; a malformed row raises with its line
  (``strict``) or is skipped.
  """
  path = Path(path)
  reader = csv.reader(io.StringIO(_read_text(path)))
  header = next(reader, None) or []
  if "movieId" not in header:
    raise DataFormatError(f"{path}:1: descriptions CSV needs a 'movieId' column, got {header}")
  col = next((c for c in _DESCRIPTION_COLUMNS if c in header), None)
  if col is None:
    raise DataFormatError(
        f"{path}:1: descriptions CSV needs one of the columns {_DESCRIPTION_COLUMNS}, "
        f"got {header}")
  id_col, text_col = header.index("movieId"), header.index(col)
  out: dict[int, str] = {}
  for row in reader:
    if not row:
      continue
    if len(row) != len(header) or not row[id_col].strip().isdigit():
      _bad(path, reader.line_num, f"expected {len(header)} fields {header}", ",".join(row),
           strict)
      continue
    text = " ".join(row[text_col].split())
    if text:
      out[int(row[id_col])] = text
  return out

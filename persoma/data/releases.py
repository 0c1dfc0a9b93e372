"""MovieLens release folders: which folder holds a dataset, its layout, and reading it whole.

``find_release_dir`` locates a release under a data dir (the folder itself or its GroupLens-named
subfolder), ``detect_layout`` tells ``100k``/``dat``/``csv`` apart from the files present, and
``read_release`` parses one folder with the readers of ``persoma.data.loaders`` into ``RawData``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from persoma.data.loaders import (DataFormatError, load_descriptions, parse_movies_100k,
                                  parse_movies_csv, parse_movies_dat, parse_ratings)
from persoma.data.structures import LoadReport, RawData

#: Release folder names per dataset name (as GroupLens ships them).
RELEASE_DIRS: dict[str, tuple[str, ...]] = {
    "movielens/100k": ("ml-100k",),
    "movielens/1m": ("ml-1m",),
    "movielens/10m": ("ml-10M100K", "ml-10m"),
    "movielens/latest-small": ("ml-latest-small",),
    "movielens/latest": ("ml-latest",),
    "movielens/20m": ("ml-20m",),
    "movielens/25m": ("ml-25m",),
    "movielens/32m": ("ml-32m",),
}
_LAYOUT_OF = {"movielens/100k": "100k", "movielens/1m": "dat", "movielens/10m": "dat"}
_LAYOUT_FILES = {
    "100k": ("u.data", "u.item"),
    "dat": ("ratings.dat", "movies.dat"),
    "csv": ("ratings.csv", "movies.csv"),
}


def expected_layout(name: str) -> str:
  """'100k', 'dat' or 'csv' for a dataset name like 'movielens/1m'."""
  return _LAYOUT_OF.get(name, "csv")


def detect_layout(folder: Path) -> str | None:
  """The layout of the release files in ``folder``, or None if there are none."""
  for layout, files in _LAYOUT_FILES.items():
    if all((folder / f).is_file() for f in files):
      return layout
  return None


def find_release_dir(name: str, data_dir: str | os.PathLike[str]) -> Path | None:
  """The folder holding ``name``'s files: ``data_dir`` itself or ``data_dir/<release folder>``.

  Returns None when neither holds release files (the caller may then try TFDS with data_dir).
  Raises DataFormatError when ``data_dir`` holds files of a different release layout.
  """
  root = Path(data_dir).expanduser()
  candidates = [root / d for d in RELEASE_DIRS.get(name, ())] + [root]
  for folder in candidates:
    layout = detect_layout(folder)
    if layout is None:
      continue
    other = [n for n, dirs in RELEASE_DIRS.items() if folder.name in dirs and n != name]
    if folder == root and other:
      raise DataFormatError(f"{folder} looks like the {other[0]} release, not {name}; pass the "
                            f"folder of {name} ({', '.join(RELEASE_DIRS.get(name, ()))}) or "
                            "its parent")
    if name in RELEASE_DIRS and layout != expected_layout(name):
      raise DataFormatError(
          f"{folder} holds {layout!r}-layout files ({', '.join(_LAYOUT_FILES[layout])}) but "
          f"{name} ships as {expected_layout(name)!r} "
          f"({', '.join(_LAYOUT_FILES[expected_layout(name)])}).")
    return folder
  return None


def default_descriptions_path(release_dir: Path) -> Path | None:
  """``<release_dir>/../descriptions/<release>_descriptions.csv`` if it exists (the shared layout)."""
  for cand in (release_dir.parent / "descriptions" / f"{release_dir.name}_descriptions.csv",
               release_dir / "descriptions.csv"):
    if cand.is_file():
      return cand
  return None


def read_release(folder: str | os.PathLike[str], *, strict: bool = True,
                 descriptions: str | os.PathLike[str] | None = None) -> RawData:
  """Reads the ratings and movies of one release folder (any layout) into RawData.

  Ratings whose movie id is missing from the movies file raise (``strict``) or are counted in
  ``report.unknown_movie_ratings`` and dropped.
  """
  folder = Path(folder)
  layout = detect_layout(folder)
  if layout is None:
    wanted = "; ".join(" + ".join(f) for f in _LAYOUT_FILES.values())
    raise FileNotFoundError(f"no MovieLens release files in {folder} (looked for: {wanted})")
  skipped: dict[str, int] = {}
  if layout == "100k":
    rpath, mpath = folder / "u.data", folder / "u.item"
    users, movies, ratings, ts, sk = parse_ratings(rpath, "\t", strict=strict)
    (mids, titles, gens), msk = parse_movies_100k(mpath, genre_file=folder / "u.genre",
                                                  strict=strict)
  elif layout == "dat":
    rpath, mpath = folder / "ratings.dat", folder / "movies.dat"
    users, movies, ratings, ts, sk = parse_ratings(rpath, "::", strict=strict)
    (mids, titles, gens), msk = parse_movies_dat(mpath, strict=strict)
  else:
    rpath, mpath = folder / "ratings.csv", folder / "movies.csv"
    users, movies, ratings, ts, sk = parse_ratings(rpath, ",", header=True, strict=strict)
    (mids, titles, gens), msk = parse_movies_csv(mpath, strict=strict)
  if sk:
    skipped[str(rpath)] = sk
  if msk:
    skipped[str(mpath)] = msk
  movie_ids = np.asarray(mids, dtype=np.int64)
  if np.unique(movie_ids).size != movie_ids.size:
    raise DataFormatError(f"{mpath}: duplicate movie ids")
  known = np.isin(movies, movie_ids)
  unknown = int((~known).sum())
  if unknown:
    if strict:
      first = int(np.flatnonzero(~known)[0])
      raise DataFormatError(
          f"{rpath}: {unknown} rating(s) refer to movie ids absent from {mpath}; first is movie "
          f"{int(movies[first])} in data row {first + 1} (pass strict=False to skip them)")
    users, movies, ratings, ts = users[known], movies[known], ratings[known], ts[known]
  desc_map: dict[int, str] = {}
  files = [str(rpath), str(mpath)]
  if descriptions is not None:
    desc_map = load_descriptions(descriptions, strict=strict)
    files.append(str(descriptions))
  descs = tuple(desc_map.get(m, "") for m in mids)
  report = LoadReport(source="local", files=tuple(files), skipped_lines=skipped,
                      unknown_movie_ratings=unknown,
                      descriptions_matched=sum(1 for d in descs if d))
  return RawData(movie_ids=movie_ids, titles=tuple(titles), genres=tuple(gens),
                 descriptions=descs, user_ids=users, rating_movie_ids=movies, ratings=ratings,
                 timestamps=ts, report=report)

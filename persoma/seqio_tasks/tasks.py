"""SeqIO tasks ``persoma_{dataset}_h{N}_{sampler}_{fmt}[_textprompt]`` and their lazy data.

Registration builds only ``seqio.Task`` objects (no data is read, no model is trained); the
dataset, the catalog embeddings, the examples of a split and the vocabulary are built on the first
``get_dataset`` (or :func:`materialize`) and cached in-process, keyed by the settings used
(:mod:`persoma.seqio_tasks.config`).

Features of an embedding task after preprocessing: ``inputs`` (the task instruction, tokens),
``targets`` (``Liked Genres: ... . Not Liked Genres: ...``, tokens), their ``*_pretokenized``
texts, ``history_embeddings`` ``[N, k*D]`` float32, ``history_mask`` ``[N]`` int32 and
``user_id`` int64 (with ``PersomaDataConfig.item_targets``, also ``history_genres`` ``[N, 19]``
float32 and ``history_stars`` ``[N]`` int32). A ``_textprompt`` task renders the history into
``inputs`` instead and has no history features.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from typing import Any, Iterable

import numpy as np
import seqio
import tensorflow as tf

from persoma.seqio_tasks import config as config_lib
from persoma.seqio_tasks import vocab as vocab_lib

DATASETS: dict[str, str] = {
    "synthetic": "synthetic",
    "movielens_1m": "movielens/1m",
    "movielens_100k": "movielens/100k",
    "movielens_latest_small": "movielens/latest-small",
    "movielens_20m": "movielens/20m",
    "movielens_25m": "movielens/25m",
}
HISTORY_SIZES: tuple[int, ...] = (5, 10, 20, 50, 100)
SAMPLERS: tuple[str, ...] = ("recency", "random", "long_tail", "topk_popularity", "genre")
FORMATS: tuple[str, ...] = ("uem", "complete", "title_score", "description_score")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
TEXTPROMPT_SUFFIX = "_textprompt"

_NAME_RE = re.compile(
    r"^persoma_(?P<dataset>{})_h(?P<n>\d+)_(?P<sampler>{})_(?P<fmt>{})(?P<tp>{})?$".format(
        "|".join(DATASETS), "|".join(SAMPLERS), "|".join(FORMATS), TEXTPROMPT_SUFFIX))


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """What a task name encodes.

  Attributes:
    dataset: slug ('movielens_1m', 'synthetic', ...).
    history_size: ``N``.
    sampler: history sampler name.
    fmt: item text format.
    textprompt: history rendered as text in ``inputs`` (no embeddings).
  """

  dataset: str
  history_size: int
  sampler: str
  fmt: str
  textprompt: bool = False

  @property
  def name(self) -> str:
    base = f"persoma_{self.dataset}_h{self.history_size}_{self.sampler}_{self.fmt}"
    return base + (TEXTPROMPT_SUFFIX if self.textprompt else "")

  @property
  def dataset_name(self) -> str:
    """The ``persoma.data.load_dataset`` name ('movielens/1m')."""
    return DATASETS[self.dataset]


def parse_task_name(name: str) -> TaskSpec:
  """Inverse of ``TaskSpec.name``; ValueError naming the valid parts otherwise."""
  m = _NAME_RE.match(name)
  if not m:
    raise ValueError(
        f"not a persoma task name: {name!r}; expected persoma_{{dataset}}_h{{N}}_{{sampler}}_"
        f"{{fmt}}[_textprompt] with dataset in {list(DATASETS)}, sampler in {list(SAMPLERS)}, "
        f"fmt in {list(FORMATS)}")
  return TaskSpec(m["dataset"], int(m["n"]), m["sampler"], m["fmt"], bool(m["tp"]))


# ----------------------------------------------------------------------------- in-process caches
_LOCK = threading.RLock()
_DATA: dict[tuple, Any] = {}
_STORES: dict[tuple, Any] = {}
_EXAMPLES: dict[tuple, Any] = {}
_ENCODERS: dict[str, Any] = {}
_VOCAB_PATHS: dict[tuple, str] = {}
# A list, not a set: hashing/equality must never be needed to track them.
_LAZY_VOCABS: list[vocab_lib.LazySentencePieceVocabulary] = []


def clear_caches() -> None:
  """Drops every in-process dataset, store, example list and resolved vocabulary."""
  with _LOCK:
    for d in (_DATA, _STORES, _EXAMPLES, _ENCODERS, _VOCAB_PATHS):
      d.clear()
    for v in list(_LAZY_VOCABS):
      v.unresolve()


def _on_config_change() -> None:
  with _LOCK:
    for v in list(_LAZY_VOCABS):
      v.unresolve()


config_lib.on_change(_on_config_change)


def _data_key(dataset_name: str, cfg: config_lib.PersomaDataConfig) -> tuple:
  if dataset_name == "synthetic":
    return (dataset_name, tuple(sorted(cfg.synthetic.items())), cfg.min_item_ratings,
            cfg.min_user_ratings)
  return (dataset_name, cfg.resolved_data_dir(dataset_name), cfg.tfds_data_dir, cfg.source,
          cfg.descriptions, cfg.strict, cfg.min_item_ratings, cfg.min_user_ratings)


def load_data(dataset_name: str) -> Any:
  """The pruned ``MovieLensData`` for ``'movielens/1m'`` etc., loaded once per settings."""
  import persoma.data as data_lib  # pylint: disable=g-import-not-at-top
  cfg = config_lib.get_config()
  key = _data_key(dataset_name, cfg)
  with _LOCK:
    if key not in _DATA:
      if dataset_name == "synthetic":
        _DATA[key] = data_lib.load_dataset(
            "synthetic", min_item_ratings=cfg.min_item_ratings,
            min_user_ratings=cfg.min_user_ratings, **dict(cfg.synthetic))
      else:
        from persoma.data import releases  # pylint: disable=g-import-not-at-top
        local = cfg.resolved_data_dir(dataset_name)
        data_dir = local
        if cfg.source == "tfds" or (cfg.source == "auto" and (
            local is None or releases.find_release_dir(dataset_name, local) is None)):
          data_dir = cfg.tfds_data_dir or local  # no local release: TFDS with its data_dir
        _DATA[key] = data_lib.load_dataset(
            dataset_name, data_dir, descriptions=cfg.descriptions, strict=cfg.strict,
            min_item_ratings=cfg.min_item_ratings, min_user_ratings=cfg.min_user_ratings,
            source=cfg.source)
    return _DATA[key]


def get_encoder(spec: str) -> Any:
  """One encoder object per spec per process (a sentence-transformer loads once)."""
  from persoma.embeddings import get_encoder as make  # pylint: disable=g-import-not-at-top
  with _LOCK:
    if spec not in _ENCODERS:
      _ENCODERS[spec] = make(spec)
    return _ENCODERS[spec]


def get_store(dataset_name: str, fmt: str) -> Any:
  """The ``EmbeddingStore`` of a dataset and format under the current encoder and cache dir."""
  from persoma.embeddings import EmbeddingStore  # pylint: disable=g-import-not-at-top
  cfg = config_lib.get_config()
  key = (_data_key(dataset_name, cfg), fmt, cfg.encoder, str(cfg.resolved_cache_dir()),
         bool(cfg.standardize_embeddings))
  with _LOCK:
    if key not in _STORES:
      store = EmbeddingStore.build(load_data(dataset_name), get_encoder(cfg.encoder), fmt,
                                   cfg.resolved_cache_dir())
      _STORES[key] = store.standardized() if cfg.standardize_embeddings else store
    return _STORES[key]


def get_examples(spec: TaskSpec, split: str) -> Any:
  """``persoma.data.build_examples`` for a task and split (an ``ExampleList``)."""
  import persoma.data as data_lib  # pylint: disable=g-import-not-at-top
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r} for {spec.name}; valid: {SPLITS}")
  cfg = config_lib.get_config()
  label_config = cfg.label_config or data_lib.LabelConfig()
  resamples = int(cfg.train_resamples) if split == "train" else 1
  resample_labels = cfg.train_resample_labels if resamples > 1 else "history"
  resample_sampler = cfg.train_resample_sampler if resamples > 1 else None
  key = (_data_key(spec.dataset_name, cfg), spec.history_size, spec.sampler, split, cfg.seed,
         label_config, tuple(cfg.split_fractions), resamples, resample_labels, resample_sampler,
         bool(cfg.target_rationale), cfg.rationale_order if cfg.target_rationale else None,
         cfg.shown_label_config, bool(cfg.whole_rationale), bool(cfg.rationale_counts))
  with _LOCK:
    if key not in _EXAMPLES:
      _EXAMPLES[key] = data_lib.build_examples(
          load_data(spec.dataset_name), split=split, history_size=spec.history_size,
          sampler=spec.sampler, seed=cfg.seed, label_config=label_config,
          fractions=tuple(cfg.split_fractions), resamples=resamples,
          resample_labels=resample_labels, resample_sampler=resample_sampler,
          rationale=bool(cfg.target_rationale), rationale_order=cfg.rationale_order,
          shown_label_config=cfg.shown_label_config,
          whole_rationale=bool(cfg.whole_rationale),
          rationale_counts=bool(cfg.rationale_counts))
    return _EXAMPLES[key]


@dataclasses.dataclass(frozen=True)
class DatasetVocabulary:
  """Picklable resolver of a dataset's vocabulary file under the current settings."""

  dataset: str

  def peek(self) -> tuple[str, int] | None:
    """The file if known without loading data or training (a path is set, or already trained)."""
    cfg = config_lib.get_config()
    if cfg.vocabulary_path:
      return cfg.vocabulary_path, cfg.vocab_extra_ids
    key = (_data_key(self.dataset, cfg), cfg.vocab_size, str(cfg.resolved_cache_dir()))
    path = _VOCAB_PATHS.get(key)
    return (path, cfg.vocab_extra_ids) if path else None

  def __call__(self) -> tuple[str, int]:
    cfg = config_lib.get_config()
    if cfg.vocabulary_path:
      return cfg.vocabulary_path, cfg.vocab_extra_ids
    key = (_data_key(self.dataset, cfg), cfg.vocab_size, str(cfg.resolved_cache_dir()))
    with _LOCK:
      if key not in _VOCAB_PATHS:
        data = load_data(self.dataset)
        slug = self.dataset.replace("/", "_").replace("-", "_")
        _VOCAB_PATHS[key] = str(vocab_lib.train_sentencepiece(
            vocab_lib.vocabulary_corpus(data), cfg.vocab_size, cfg.resolved_cache_dir(), slug))
      return _VOCAB_PATHS[key], cfg.vocab_extra_ids


@functools.lru_cache(maxsize=None)
def get_vocabulary(dataset_name: str) -> vocab_lib.LazySentencePieceVocabulary:
  """The (lazy) vocabulary shared by all tasks of ``dataset_name``."""
  v = vocab_lib.LazySentencePieceVocabulary(DatasetVocabulary(dataset_name))
  _LAZY_VOCABS.append(v)
  return v


def item_target_features(spec: TaskSpec, positions: list) -> dict[str, np.ndarray]:
  """``history_genres`` ``[E, N, 19]`` / ``history_stars`` ``[E, N]`` when the settings ask for
  item targets (``PersomaDataConfig.item_targets``), else ``{}``."""
  if spec.textprompt or not config_lib.get_config().item_targets:
    return {}
  from persoma.data import labels  # pylint: disable=g-import-not-at-top
  genres, stars = labels.item_targets(load_data(spec.dataset_name), positions, spec.history_size)
  return {"history_genres": genres, "history_stars": stars}


# ----------------------------------------------------------------------------- tf.data source
def instruction() -> str:
  from persoma.data import formats  # pylint: disable=g-import-not-at-top
  return formats.TASK_INSTRUCTION


def input_texts(spec: TaskSpec, examples: Any) -> list[str]:
  """The ``inputs`` text of each example: the instruction, or the rendered history."""
  if not spec.textprompt:
    return [instruction()] * len(examples)
  from persoma.data import formats  # pylint: disable=g-import-not-at-top
  data = load_data(spec.dataset_name)
  return [formats.history_text(data, ex.positions, spec.fmt, instruction()) for ex in examples]


@dataclasses.dataclass(frozen=True)
class PersomaDatasetFn:
  """``seqio.FunctionDataSource`` dataset_fn of one task (picklable)."""

  spec: TaskSpec

  def __call__(self, split: str, shuffle_files: bool = False, seed: int | None = None
               ) -> tf.data.Dataset:
    del shuffle_files, seed  # one in-memory source; seqio shuffles examples itself
    spec = self.spec
    exs = get_examples(spec, split)
    feats: dict[str, Any] = {
        "user_id": np.asarray([ex.user_id for ex in exs], np.int64),
        "inputs": tf.constant(input_texts(spec, exs), tf.string, shape=[len(exs)]),
        "targets": tf.constant([ex.targets for ex in exs], tf.string, shape=[len(exs)]),
    }
    if spec.textprompt:
      return tf.data.Dataset.from_tensor_slices(feats)
    store = get_store(spec.dataset_name, spec.fmt)
    n, k, dim = spec.history_size, store.texts_per_item, store.dim
    feats["history_index"] = store.history_index([ex.positions for ex in exs], n)
    feats.update(item_target_features(spec, [ex.positions for ex in exs]))
    table = tf.constant(store.padded_table())
    pad = len(store.texts)

    def assemble(x):
      idx = x.pop("history_index")
      x["history_embeddings"] = tf.reshape(tf.gather(table, idx), [n, k * dim])
      x["history_mask"] = tf.cast(idx[:, 0] < pad, tf.int32)
      return x

    return tf.data.Dataset.from_tensor_slices(feats).map(assemble)


def tokenize_text(dataset: tf.data.Dataset, output_features: Any) -> tf.data.Dataset:
  """Tokenizes ``inputs``/``targets`` only, keeping ``*_pretokenized`` (floats untouched)."""

  def fn(x):
    x = dict(x)
    for key in ("inputs", "targets"):
      x[f"{key}_pretokenized"] = x[key]
      x[key] = output_features[key].vocabulary.encode_tf(x[key])
    return x

  return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def output_features(spec: TaskSpec) -> dict[str, seqio.Feature]:
  v = get_vocabulary(spec.dataset_name)
  feats = {
      "inputs": seqio.Feature(vocabulary=v, add_eos=True),
      "targets": seqio.Feature(vocabulary=v, add_eos=True),
      "user_id": seqio.ContinuousFeature(dtype=tf.int64, rank=0, required=False),
  }
  if not spec.textprompt:
    feats["history_embeddings"] = seqio.ContinuousFeature(dtype=tf.float32, rank=2)
    feats["history_mask"] = seqio.ContinuousFeature(dtype=tf.int32, rank=1)
    feats["history_genres"] = seqio.ContinuousFeature(dtype=tf.float32, rank=2, required=False)
    feats["history_stars"] = seqio.ContinuousFeature(dtype=tf.int32, rank=1, required=False)
  return feats


def register_task(spec: TaskSpec, overwrite: bool = False) -> seqio.Task:
  """Registers one task (no data is touched)."""
  if overwrite:
    seqio.TaskRegistry.remove(spec.name)
  return seqio.TaskRegistry.add(
      spec.name,
      source=seqio.FunctionDataSource(PersomaDatasetFn(spec), splits=SPLITS),
      preprocessors=[tokenize_text, seqio.preprocessors.append_eos_after_trim],
      output_features=output_features(spec),
      metric_fns=[],
      shuffle_buffer_size=10_000,
  )


def all_specs(datasets: Iterable[str] = tuple(DATASETS),
              history_sizes: Iterable[int] = HISTORY_SIZES,
              samplers: Iterable[str] = SAMPLERS, formats: Iterable[str] = FORMATS,
              textprompt: bool = True) -> list[TaskSpec]:
  out = []
  for d in datasets:
    for n in history_sizes:
      for s in samplers:
        for f in formats:
          out.append(TaskSpec(d, int(n), s, f))
          if textprompt:
            out.append(TaskSpec(d, int(n), s, f, True))
  return out


def register_all(**kwargs: Any) -> list[str]:
  """Registers every task of :func:`all_specs` not yet registered; returns all names."""
  names = []
  registered = set(seqio.TaskRegistry.names())
  for spec in all_specs(**kwargs):
    if spec.name not in registered:
      register_task(spec)
    names.append(spec.name)
  return names

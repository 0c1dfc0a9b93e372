"""What a run trains on and with: the task (data) and the model, as gin-bound dataclasses.

`gin/experiment.gin` binds these from macros, so each choice is one `--gin.` binding:
`DATASET`, `HISTORY_SIZE`, `SAMPLER`, `FORMAT`, `ENCODER`, `TEXT_PROMPT` (the task) and
`MODEL_SIZE`, `ADAPTER`, `COMPOSITION`, `LORA_RANK`, `TRAINING_MODE`,
`INITIAL_CHECKPOINT_PATH` (the model).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Mapping

import numpy as np

from persoma import errors
from persoma.train import trainer as trainer_lib

LOUD_RANDOM_LM = (
    "\n" + "!" * 78 + "\n"
    "!! WARNING: training mode {mode!r} without INITIAL_CHECKPOINT_PATH: the T5 language model\n"
    "!! is RANDOMLY INITIALISED and {what}. Results will be meaningless unless that is intended.\n"
    "!! Set --gin.INITIAL_CHECKPOINT_PATH=\"'/path/to/t5x/checkpoint'\" (e.g. FlanT5 on GCS).\n"
    + "!" * 78)


@dataclasses.dataclass(frozen=True)
class TaskData:
  """A persoma SeqIO task and its sequence lengths.

  Attributes:
    dataset: dataset slug (`synthetic`, `movielens_1m`, ...; `movielens/1m` also accepted).
    history_size: N.
    sampler: history sampler.
    fmt: item text format (`uem`, `complete`, `title_score`, `description_score`).
    text_prompt: the text-prompting variant (history rendered into the input).
    inputs_length, targets_length: token lengths L and T.
    data_config: a `persoma.seqio_tasks.PersomaDataConfig` to install (None: keep current).
  """

  dataset: str = "synthetic"
  history_size: int = 50
  sampler: str = "recency"
  fmt: str = "uem"
  text_prompt: bool = False
  inputs_length: int = 64
  targets_length: int = 32
  data_config: Any = None

  @property
  def slug(self) -> str:
    return self.dataset.replace("/", "_").replace("-", "_")

  @property
  def task_name(self) -> str:
    name = f"persoma_{self.slug}_h{self.history_size}_{self.sampler}_{self.fmt}"
    return name + ("_textprompt" if self.text_prompt else "")

  def validate(self) -> None:
    """Cheap checks of the task choices (no data is read); ConfigError naming the gin macro."""
    from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
    for value, macro in ((self.history_size, "HISTORY_SIZE"),
                         (self.inputs_length, "INPUTS_LENGTH"),
                         (self.targets_length, "TARGETS_LENGTH")):
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise errors.ConfigError(f"{macro}={value!r} must be an int >= 1")
    for value, valid, macro in ((self.slug, tasks.DATASETS, "DATASET"),
                                (self.sampler, tasks.SAMPLERS, "SAMPLER"),
                                (self.fmt, tasks.FORMATS, "FORMAT")):
      if value not in valid:
        shown = self.dataset if macro == "DATASET" else value
        raise errors.ConfigError(f"{macro}={shown!r} is unknown; choose one of {list(valid)}")
    encoder = getattr(self.data_config, "encoder", None)
    if isinstance(encoder, str):
      from persoma.embeddings import encoders  # pylint: disable=g-import-not-at-top
      try:
        encoders.get_encoder(encoder)  # parses the spec; model weights load lazily
      except ValueError as e:
        raise errors.ConfigError(f"ENCODER={encoder!r}: {e}") from None

  def install(self) -> None:
    """Installs `data_config` (if any) as the SeqIO tasks' settings."""
    if self.data_config is not None:
      from persoma.seqio_tasks import config  # pylint: disable=g-import-not-at-top
      config.set_config(self.data_config)

  def spec(self):
    from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
    return tasks.parse_task_name(self.task_name)

  def vocabulary(self):
    from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
    return tasks.get_vocabulary(self.spec().dataset_name)

  def load(self, split: str, history_as_index: bool | None = None) -> trainer_lib.SplitData:
    """Materializes `split`: model features `[E, ...]` and target texts `[E]`.

    `history_as_index` (default: only for 'train') keeps `history_index` rows plus
    `SplitData.history_table` instead of dense `history_embeddings` (see `SplitData.rows`).
    """
    from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
    from persoma.seqio_tasks.materialize import history_table, materialize  # pylint: disable=g-import-not-at-top
    spec = self.spec()
    # Train splits (possibly several histories per user) keep row indices into the catalog
    # embedding table and gather each batch on the host; eval splits are small and dense.
    as_index = (split == "train" if history_as_index is None else history_as_index) and (
        not spec.textprompt)
    arrays = materialize(self.task_name, split,
                         {"inputs": self.inputs_length, "targets": self.targets_length},
                         history_as_index=as_index)
    examples = tasks.get_examples(spec, split)
    targets = [ex.targets for ex in examples]
    if not targets:
      raise ValueError(f"task {self.task_name}: split {split!r} is empty (no users); "
                       "use a larger dataset or other split fractions")
    for key, length, macro in (("decoder_target_tokens", self.targets_length, "TARGETS_LENGTH"),
                               ("encoder_input_tokens", self.inputs_length, "INPUTS_LENGTH")):
      full = int(np.count_nonzero(arrays[key][:, -1]))
      if full and key == "decoder_target_tokens" and tasks.config_lib.get_config().target_rationale:
        raise errors.ConfigError(
            f"{self.task_name}/{split}: {full} of {len(targets)} targets fill all {length} "
            f"tokens; with PersomaDataConfig.target_rationale the labels come after the "
            f"rationale and may be cut off: raise {macro} (128 fits ml-1m at N=50, 160 at N=100; "
            f"with rationale_counts 160 at N=50)")
      if full:
        logging.warning(
            "%s/%s: %d of %d %s fill all %d tokens and may be truncated; raise %s.",
            self.task_name, split, full, len(targets), key, length, macro)
    table = history_table(self.task_name) if as_index else None
    return trainer_lib.SplitData(arrays, targets, split, history_table=table,
                                 user_ids=[int(ex.user_id) for ex in examples])

  def dataset_object(self):
    from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
    return tasks.load_data(self.spec().dataset_name)

  def embeddings_identity(self) -> dict[str, Any] | None:
    """What identifies the item-embedding table this task reads (None for text prompting):
    encoder, cache file name, whether it is standardized and the sha256 of the `[V, D]` table
    as the model sees it (`persoma.train.environment.table_digest`). Two hosts whose encoder
    gives other last bits get other digests."""
    if self.text_prompt:
      return None
    from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
    from persoma.train import environment  # pylint: disable=g-import-not-at-top
    spec = self.spec()
    store = tasks.get_store(spec.dataset_name, spec.fmt)
    return {"encoder": store.encoder_name, "cache_file": os.path.basename(store.stats.cache_path),
            "standardized": store.slot_stats is not None, "shape": list(store.table.shape),
            "sha256": environment.table_digest(store.table)}


def make_decoder(vocabulary):
  """tokens `[B, T]` -> texts (cut at EOS)."""
  eos = vocabulary.eos_id

  def decode(tokens: np.ndarray) -> list[str]:
    out = []
    for row in np.asarray(tokens):
      ids = [int(t) for t in row]
      if eos in ids:
        ids = ids[:ids.index(eos)]
      out.append(vocabulary.decode([t for t in ids if t > 0]))
    return out

  return decode


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """How to build the `PersomaModel` (sizes from the data fill in `vocab_size`, `input_dim`).

  Attributes:
    size: T5 preset (`tiny`, `mini`: test / CPU sizes; `small`, `base`, `large`, `xl`, `xxl`).
    t5_overrides: extra `T5Config` fields (e.g. `{'dropout_rate': 0.1}`).
    composition: `persoma` | `uem` | `text` (text prompting: no adapter).
    adapter: `mlp` | `transformer` | `perceiver` | `uem` | `pool` | `genre_stats` (the last
      two are persoma additions; ignored for `text`).
    adapter_fields: per-adapter dataclass fields, keyed by adapter name.
    task_prompt_length: learned task prompt tokens (paper: 20).
    task_prompt_init: `TaskPrompt` init fields.
    lora_rank, lora_alpha: LoRA (rank 0 = none).
    vocab_size: T5 vocabulary size; None -> the task vocabulary's size (rounded up to 128).
    z_loss, loss_normalizing_factor: T5X loss settings.
    item_loss_weight: weight of the `genre_stats` adapter's item-head loss (0 = none; needs
      `PersomaDataConfig.item_targets`).
    genre_name_tokens: add each genre name's token embedding to its `genre_stats` token (the
      ids come from the task vocabulary).
    probe_loss_weight: weight of the genre-probe loss (`persoma.models.genre_probe`; 0 = no
      probe; needs `PersomaDataConfig.item_targets` and TASK_PROMPT_LENGTH >= 19).
    probe_rule: the `persoma.data.labels.LabelConfig` whose per-genre working the probe predicts
      (None: the default label rule); runs on `shown` labels bind their shown rule.
    probe_whole_rule: the `LabelConfig` of the probe's targets on rows showing fewer than N
      items (None: probe_rule for every row); runs with `PersomaDataConfig.whole_rationale`
      bind the label rule.
  """

  size: str = "small"
  t5_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  composition: str = "persoma"
  adapter: str = "mlp"
  adapter_fields: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
  task_prompt_length: int = 20
  task_prompt_init: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  lora_rank: int = 0
  lora_alpha: float = 16.0
  vocab_size: int | None = None
  z_loss: float = 1e-4
  loss_normalizing_factor: Any = "NUM_REAL_TARGET_TOKENS"
  item_loss_weight: float = 0.0
  genre_name_tokens: bool = False
  probe_loss_weight: float = 0.0
  probe_rule: Any = None
  probe_whole_rule: Any = None

  def validate(self) -> None:
    """Cheap checks of the model choices (nothing is built); ConfigError naming the gin macro."""
    from persoma.models import persoma_net, registry  # pylint: disable=g-import-not-at-top
    from persoma.models.t5 import config as t5_config  # pylint: disable=g-import-not-at-top
    for value, valid, macro in ((self.size, t5_config.PRESETS, "MODEL_SIZE"),
                                (self.composition, persoma_net.COMPOSITIONS, "COMPOSITION")):
      if value not in valid:
        raise errors.ConfigError(f"{macro}={value!r} is unknown; choose one of {list(valid)}")
    adapters = sorted(registry.adapter_classes())
    if self.composition != "text" and self.adapter not in adapters:
      raise errors.ConfigError(f"ADAPTER={self.adapter!r} is unknown; choose one of {adapters}")
    rank = self.lora_rank
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
      raise errors.ConfigError(f"LORA_RANK={rank!r} must be an int >= 0 (0 = no LoRA)")
    if not isinstance(self.task_prompt_length, int) or self.task_prompt_length < 0:
      raise errors.ConfigError(
          f"TASK_PROMPT_LENGTH={self.task_prompt_length!r} must be an int >= 0")
    if self.probe_loss_weight:
      from persoma.data import genres as genres_lib, labels  # pylint: disable=g-import-not-at-top
      if self.probe_loss_weight < 0:
        raise errors.ConfigError(
            f"ModelSpec.probe_loss_weight={self.probe_loss_weight!r} must be >= 0")
      if self.task_prompt_length < genres_lib.NUM_GENRES:
        raise errors.ConfigError(
            f"ModelSpec.probe_loss_weight={self.probe_loss_weight} reads one task-prompt token "
            f"per genre ({genres_lib.NUM_GENRES}) but TASK_PROMPT_LENGTH="
            f"{self.task_prompt_length}")
      for name in ("probe_rule", "probe_whole_rule"):
        value = getattr(self, name)
        if value is not None and not isinstance(value, labels.LabelConfig):
          raise errors.ConfigError(f"ModelSpec.{name} must be a labels.LabelConfig, got "
                                   f"{type(value).__name__}")
    elif self.probe_whole_rule is not None:
      raise errors.ConfigError("ModelSpec.probe_whole_rule is set but probe_loss_weight is 0: "
                               "there is no genre probe to read it")
    try:
      t5_config.get_config(self.size, lora_rank=rank, lora_alpha=self.lora_alpha,
                           **dict(self.t5_overrides))
    except (TypeError, ValueError) as e:
      raise errors.ConfigError(f"T5 config of MODEL_SIZE={self.size!r} with LORA_ALPHA="
                               f"{self.lora_alpha!r} and ModelSpec.t5_overrides="
                               f"{dict(self.t5_overrides)}: {e}") from None

  def build(self, vocab_size: int, input_dim: int | None, vocabulary: Any = None):
    """The `PersomaModel` for a vocabulary of `vocab_size` and history width `input_dim`
    (`vocabulary`, with `.encode(text)`, is needed for `genre_name_tokens`)."""
    from persoma.models import model as model_lib  # pylint: disable=g-import-not-at-top
    from persoma.models import genre_probe, persoma_net, prompts, registry  # pylint: disable=g-import-not-at-top
    from persoma.models.t5 import config as t5_config  # pylint: disable=g-import-not-at-top
    vs = self.vocab_size or int(-(-vocab_size // 128) * 128)
    if vs < vocab_size:
      raise ValueError(f"ModelSpec.vocab_size={vs} is smaller than the task vocabulary "
                       f"({vocab_size})")
    cfg = t5_config.get_config(self.size, vocab_size=vs, lora_rank=self.lora_rank,
                               lora_alpha=self.lora_alpha, **dict(self.t5_overrides))
    adapter = None
    if self.composition != "text":
      if input_dim is None:
        raise ValueError(f"composition {self.composition!r} needs history embeddings, but the "
                         "task has none (a _textprompt task?)")
      fields = dict(self.adapter_fields.get(self.adapter, {}))
      if self.genre_name_tokens:
        if self.adapter != "genre_stats" or vocabulary is None:
          raise ValueError("ModelSpec.genre_name_tokens needs adapter='genre_stats' and the "
                           f"task vocabulary (adapter={self.adapter!r})")
        from persoma.data import genres as genres_lib  # pylint: disable=g-import-not-at-top
        fields["genre_token_ids"] = tuple(tuple(int(i) for i in vocabulary.encode(g))
                                          for g in genres_lib.GENRES)
      adapter = registry.get_adapter(self.adapter, input_dim=input_dim, **fields)
    net = persoma_net.PersomaNetwork(
        cfg, adapter=adapter, task_prompt_length=self.task_prompt_length,
        task_prompt=prompts.TaskPrompt(**dict(self.task_prompt_init)) if self.task_prompt_init
        else None, composition=self.composition,
        genre_probe=genre_probe.GenreProbe(
            **({} if self.probe_rule is None else {"rule": self.probe_rule}),
            whole_rule=self.probe_whole_rule)
        if self.probe_loss_weight else None)
    return model_lib.PersomaModel(net, z_loss=self.z_loss,
                                  loss_normalizing_factor=self.loss_normalizing_factor,
                                  item_loss_weight=self.item_loss_weight,
                                  probe_loss_weight=self.probe_loss_weight)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Task + model + training mode (+ optional pretrained T5X checkpoint)."""

  task: TaskData = TaskData()
  model: ModelSpec = ModelSpec()
  training_mode: str = "full"
  initial_checkpoint_path: str | None = None

  def validate(self) -> None:
    """Checks every choice before any data is read or model built (cheap: no data, no jax).

    Raises:
      persoma.errors.ConfigError: a bad value, naming its gin macro (e.g. `HISTORY_SIZE=-5
        must be an int >= 1`).
    """
    from persoma.models import training_modes  # pylint: disable=g-import-not-at-top
    self.task.validate()
    self.model.validate()
    modes = sorted(training_modes.MODES)
    if self.training_mode is not None and self.training_mode not in modes:
      raise errors.ConfigError(
          f"TRAINING_MODE={self.training_mode!r} is unknown; choose one of {modes}")
    if self.training_mode == "lora" and not self.model.lora_rank:
      raise errors.ConfigError(
          "TRAINING_MODE='lora' trains LoRA factors, but LORA_RANK=0 adds none: set "
          "--gin.LORA_RANK=4 (for example), or include modes/lora.gin")
    if self.model.composition != "text" and self.task.text_prompt:
      raise errors.ConfigError(
          f"COMPOSITION={self.model.composition!r} reads history embeddings, but "
          "TEXT_PROMPT=True renders the history as text: use COMPOSITION='text'")

  def build_model(self, example: Mapping[str, np.ndarray], vocab_size: int,
                  vocabulary: Any = None):
    """The model for `example`'s history width; `vocabulary` (default: the task's) is read only
    for `ModelSpec.genre_name_tokens`."""
    emb = example.get("history_embeddings")
    if self.model.genre_name_tokens and vocabulary is None:
      vocabulary = self.task.vocabulary()
    return self.model.build(vocab_size, None if emb is None else int(emb.shape[-1]), vocabulary)

  def initial_params_loader(self):
    """params -> params restored from `initial_checkpoint_path` (None: from scratch), and
    a loud warning when a frozen/lora run would train on a random LM."""
    if not self.initial_checkpoint_path:
      if self.training_mode in ("frozen", "lora"):
        what = ("FROZEN: only the adapter and task prompt learn" if self.training_mode ==
                "frozen" else "only LoRA factors, adapter and task prompt learn")
        logging.warning(LOUD_RANDOM_LM.format(mode=self.training_mode, what=what))
      return None
    path = self.initial_checkpoint_path

    def load(params):
      from persoma.models import restore  # pylint: disable=g-import-not-at-top
      restored, report = restore.restore_params(params, path)
      logging.info("Initial checkpoint %s: %s", path, report)
      return restored

    return load

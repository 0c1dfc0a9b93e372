"""`persoma-infer`: personalised genre predictions for users given their rated movies.

  persoma-infer --model_dir=DIR --history=FILE.json [--checkpoint=STEP_DIR] [--json]

FILE.json holds one user or many:

  {"users": [{"user": "alice", "history": [
      {"title": "Heat (1995)", "rating": 4.5, "genres": ["Action", "Crime"],
       "description": "A group of professional bank robbers ..."}, ...]}, ...]}

(or a list of such users, or one `{"history": [...]}` object). `title` and `rating` (0.5-5
stars) are required; `genres` and `description` are optional. Items are taken in file order
as time order; the last HISTORY_SIZE are used. The run's `config.gin` (in DIR) fixes the
encoder, item format, history size and model; the best checkpoint is used unless
--checkpoint names one. Prints, per user, the generated text and the parsed genres.

Items are embedded as in training: with `STANDARDIZE_EMBEDDINGS=True` the run's catalog
embedding store is built (or read from the cache) and each text is z-scored per dimension with
its slot's catalog statistics (a catalog text takes its stored row), so the dataset must be
available as it was for training.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from typing import Any, Sequence

import numpy as np

from persoma import errors, fileio
from persoma.data import genres as genres_lib
from persoma.train import partitioning


def load_users(path: str) -> list[dict[str, Any]]:
  """Reads and validates the history JSON (errors name the file, user and item)."""
  if not fileio.isfile(path):
    raise SystemExit(f"error: history file {path} not found")
  try:
    with fileio.open(path) as f:
      obj = json.load(f)
  except json.JSONDecodeError as e:
    raise SystemExit(f"error: {path}: invalid JSON at line {e.lineno}: {e.msg}") from None
  return parse_users(obj, path)


def parse_users(obj: Any, path: str = "<history>") -> list[dict[str, Any]]:
  """Validates a loaded history object (see the module doc); errors name `path`, user, item."""
  users = obj.get("users", [obj]) if isinstance(obj, dict) else obj
  if not isinstance(users, list) or not users:
    raise SystemExit(f"error: {path}: expected a user object, a list of users or "
                     "{'users': [...]}")
  out = []
  for u, user in enumerate(users):
    name = user.get("user", f"user_{u}") if isinstance(user, dict) else None
    items = user.get("history") if isinstance(user, dict) else None
    if not isinstance(items, list) or not items:
      raise SystemExit(f"error: {path}: user #{u} ({name}) needs a non-empty 'history' list")
    clean = []
    for i, it in enumerate(items):
      where = f"{path}: user {name!r} item #{i}"
      if not isinstance(it, dict) or not isinstance(it.get("title"), str) or not it["title"]:
        raise SystemExit(f"error: {where}: needs a 'title' string")
      try:
        if isinstance(it.get("rating"), bool):
          raise TypeError("a boolean is not a rating")
        rating = float(it.get("rating"))
      except (TypeError, ValueError):
        raise SystemExit(f"error: {where}: needs a numeric 'rating'") from None
      if not (math.isfinite(rating) and 0 <= rating <= 5):
        raise SystemExit(f"error: {where}: rating {rating} outside 0-5 stars")
      genres = it.get("genres") or []
      if isinstance(genres, str):
        genres = [g for g in genres.replace("|", ",").split(",") if g.strip()]
      if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
        raise SystemExit(f"error: {where}: 'genres' must be a list of genre names or an "
                         f"'A|B' string, got {genres!r}")
      unknown = genres_lib.unknown_genres("|".join(genres))
      if unknown:
        raise SystemExit(f"error: {where}: unknown genre(s) {unknown}; known: "
                         f"{', '.join(genres_lib.GENRES)}")
      clean.append({"title": it["title"], "rating": rating,
                    "genres": tuple(g.strip() for g in genres),
                    "description": str(it.get("description") or "")})
    out.append({"user": name, "history": clean})
  return out


def standardized_store(task: Any) -> Any:
  """The task's (standardized) `EmbeddingStore` if the current data config standardizes
  item embeddings (`STANDARDIZE_EMBEDDINGS`), else None: raw encoder outputs are what
  training sees then."""
  from persoma.seqio_tasks import config as data_config  # pylint: disable=g-import-not-at-top
  from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
  if task.text_prompt or not data_config.get_config().standardize_embeddings:
    return None
  return tasks.get_store(task.spec().dataset_name, task.fmt)


def build_batch(users: list[dict[str, Any]], task: Any, vocabulary: Any, encoder: Any,
                store: Any = None) -> dict[str, np.ndarray]:
  """Model features for `users`: `[U, L]` tokens (+ `[U, N, k*D]` history, `[U, N]` mask).

  History items are embedded by `encoder`, or, if `store` is given or the data config
  standardizes embeddings (`standardized_store`), by `store.item_embeddings` as training does.
  """
  from persoma.data import formats  # pylint: disable=g-import-not-at-top
  from persoma.data import genres as genres_lib  # pylint: disable=g-import-not-at-top
  n_hist, fmt = task.history_size, task.fmt

  def canon(gs):
    return tuple(g for g in (genres_lib.normalize_genre(x) for x in gs) if g)

  if store is None and not task.text_prompt:
    store = standardized_store(task)
  inputs, embs, masks = [], [], []
  for user in users:
    items = user["history"][-n_hist:]
    if task.text_prompt:
      inputs.append(formats.render_history_text(
          fmt, [i["title"] for i in items], [canon(i["genres"]) for i in items],
          [i["description"] for i in items], [i["rating"] for i in items],
          formats.TASK_INSTRUCTION))
      continue
    inputs.append(formats.TASK_INSTRUCTION)
    texts = [formats.item_texts(fmt, i["title"], canon(i["genres"]), i["description"],
                                i["rating"]) for i in items]
    if store is not None:
      item = store.item_embeddings(texts, encoder)
    else:
      flat = np.asarray(encoder.encode([t for row in texts for t in row]), np.float32)
      item = flat.reshape(len(items), -1)
    emb = np.zeros((n_hist, item.shape[-1]), np.float32)
    emb[:len(items)] = item
    mask = np.zeros((n_hist,), np.int32)
    mask[:len(items)] = 1
    embs.append(emb)
    masks.append(mask)
  L, T = task.inputs_length, task.targets_length
  enc = np.zeros((len(users), L), np.int32)
  for r, text in enumerate(inputs):
    ids = list(vocabulary.encode(text))[:L - 1] + [vocabulary.eos_id]
    enc[r, :len(ids)] = ids
  batch = {"encoder_input_tokens": enc,
           "decoder_input_tokens": np.zeros((len(users), T), np.int32),
           "decoder_target_tokens": np.zeros((len(users), T), np.int32),
           "decoder_loss_weights": np.zeros((len(users), T), np.float32)}
  if not task.text_prompt:
    batch["history_embeddings"] = np.stack(embs)
    batch["history_mask"] = np.stack(masks)
  return batch


def infer(*, experiment: Any, model_dir: str, history: str, checkpoint: str | None = None,
          partitioner: Any = None, batch_size: int = 8) -> list[dict[str, Any]]:
  """Generated text and parsed genres for every user in the `history` file."""
  from persoma import metrics  # pylint: disable=g-import-not-at-top
  from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
  from persoma.train import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from persoma.train import optim  # pylint: disable=g-import-not-at-top
  from persoma.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  experiment.validate()  # a bad --gin override: one clear error before any data is read
  partitioner = partitioner or partitioning.Partitioner()
  batch_size = -(-batch_size // partitioner.data_size) * partitioner.data_size
  users = load_users(history)
  task = experiment.task
  task.install()
  vocab = task.vocabulary()
  from persoma.seqio_tasks import config as data_config  # pylint: disable=g-import-not-at-top
  encoder = None if task.text_prompt else tasks.get_encoder(data_config.get_config().encoder)
  feats = build_batch(users, task, vocab, encoder)
  model = experiment.build_model(feats, vocab.vocab_size, vocab)
  cfg = trainer_lib.TrainerConfig(train_steps=1, batch_size=batch_size,
                                  eval_batch_size=batch_size)
  tr = trainer_lib.Trainer(model, partitioner, optim.OptimizerConfig(), cfg, model_dir,
                           {k: v[:1] for k, v in feats.items()},
                           decode_fn=experiment_lib.make_decoder(vocab), inference_only=True)
  step, step_dir = tr.load_params_from(checkpoint or model_dir)
  logging.info("Inference with %s (step %d) for %d users", step_dir, step, len(users))
  decode = experiment_lib.make_decoder(vocab)
  texts: list[str] = []
  for batch, real in trainer_lib.data_lib.eval_batches(feats, batch_size, "infer"):
    texts.extend(decode(tr.predict_tokens(batch)[:real]))
  out = []
  for user, text in zip(users, texts):
    v = metrics.parse(text)
    out.append({"user": user["user"], "items_used": min(len(user["history"]),
                                                        task.history_size),
                "text": text, "liked": list(v.liked), "disliked": list(v.disliked),
                "step": step})
  return out


def main(argv: Sequence[str] | None = None) -> int:
  from persoma.train import gin_cli  # pylint: disable=g-import-not-at-top
  p, bindings, rest = gin_cli.gin_parser("persoma-infer", __doc__, argv)
  p.add_argument("--model_dir", required=True, help="a persoma-train MODEL_DIR")
  p.add_argument("--history", required=True, help="users' rated movies (JSON)")
  p.add_argument("--checkpoint", default=None, help="one step dir (default: best)")
  p.add_argument("--json", action="store_true", help="one JSON line per user")
  p.add_argument("--verbose", action="store_true")
  a = p.parse_args(rest)
  gin_cli.setup_logging(a.verbose)
  partitioning.maybe_initialize_distributed()
  import gin  # pylint: disable=g-import-not-at-top
  config = os.path.join(a.model_dir, "config.gin")
  if not fileio.exists(config):
    raise SystemExit(f"error: {config} not found: --model_dir must be a persoma-train MODEL_DIR")
  gin_cli.parse([config] + list(a.gin_file) + ["runs/infer.gin"],
                list(a.gin_bindings) + bindings, a.gin_search_paths)
  from persoma.train import checkpointing  # pylint: disable=g-import-not-at-top
  from persoma.train import main_infer as this  # pylint: disable=g-import-not-at-top
  try:
    results = gin.get_configurable(this.infer)(model_dir=a.model_dir, history=a.history,
                                               checkpoint=a.checkpoint)
  except (checkpointing.CheckpointMismatchError, errors.ConfigError) as e:
    raise SystemExit(f"error: {errors.one_line(e)}") from None
  for r in results:
    if a.json:
      print(json.dumps(r), flush=True)
    else:
      print(f"{r['user']}: {r['text']}\n  liked: {', '.join(r['liked']) or 'None'} | "
            f"not liked: {', '.join(r['disliked']) or 'None'}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())

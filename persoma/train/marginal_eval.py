"""Thresholded label marginals from beam search: `persoma-eval --num_decodes K --threshold T`.

For each user, beam search (length penalty off, so scores are sequence log-probabilities)
returns K decodes; `persoma.metrics.marginals` turns them into per-class marginals, and a class
is predicted when its marginal reaches the threshold. `--threshold tune` picks it on the
validation split (never on the split being scored). The greedy text is not needed: the best
beam alone is also scored (`beam_top1`), so the gain of the threshold over plain beam search
shows on its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from persoma.data import formats
from persoma.data import genres as genres_lib
from persoma.metrics import marginals as marginals_lib
from persoma.metrics import verbalizer
from persoma.metrics import weighted
from persoma.train import data as data_lib
from persoma.train import trainer as trainer_lib


def make_beam_fn(trainer: Any, num_decodes: int) -> Callable[[Any, Mapping[str, Any]], Any]:
  """Jitted `(params, batch) -> (tokens [B, K, T], log_probs [B, K])`, best decode last."""
  if num_decodes < 2:
    raise ValueError(f"label marginals need num_decodes >= 2, got {num_decodes}")
  model = trainer.model

  def beams(params, batch):
    return model.predict_batch_with_aux(
        params, batch, num_decodes=num_decodes, return_all_decodes=True,
        decoder_params={"decode_method": "beam", "alpha": 0.0})

  return jax.jit(beams, in_shardings=(trainer.param_shardings, trainer.batch_shardings),
                 out_shardings=trainer.partitioner.replicated)


def decode_marginals(trainer: Any, arrays: Mapping[str, np.ndarray], split: str,
                     decode_fn: Callable[[np.ndarray], list[str]], num_decodes: int,
                     batch_size: int, max_examples: int | None = None,
                     progress_every_secs: float = 15.0,
                     beam_fn: Callable[[Any, Mapping[str, Any]], Any] | None = None
                     ) -> dict[str, Any]:
  """Beam-decodes a split: `{'marginals' [n, C], 'top1' [n, C] indicators of the best beam,
  'texts' list of n lists of K texts (best last), 'log_probs' [n, K]}`. Pass the same
  `beam_fn` (`make_beam_fn(trainer, num_decodes)`) to decode several splits with one compile."""
  arrays = trainer_lib.device_features(arrays)
  n = data_lib._num_examples(arrays, f"split {split!r}")  # pylint: disable=protected-access
  if max_examples is not None:
    n = min(n, max_examples)
    arrays = {k: v[:n] for k, v in arrays.items()}
  fn = beam_fn or make_beam_fn(trainer, num_decodes)
  texts: list[list[str]] = []
  scores: list[np.ndarray] = []
  t0 = last = time.time()
  for batch, real in data_lib.eval_batches(arrays, batch_size, split):
    sharded = trainer.partitioner.shard_batch(trainer_lib._local_slice(batch))  # pylint: disable=protected-access
    tokens, aux = jax.device_get(fn(trainer.state["params"], sharded))
    tokens = np.asarray(tokens)[:real]
    flat = decode_fn(tokens.reshape((-1, tokens.shape[-1])))
    texts.extend(flat[i * num_decodes:(i + 1) * num_decodes] for i in range(real))
    scores.append(np.asarray(aux["scores"])[:real])
    now = time.time()
    if now - last > progress_every_secs:
      rate = len(texts) / (now - t0)
      logging.info("beam x%d %s: %d/%d users, %.2f users/s", num_decodes, split, len(texts), n,
                   rate)
      last = now
  log_probs = np.concatenate(scores, axis=0)
  ind, _ = verbalizer.parse_many([t for row in texts for t in row])
  ind = ind.reshape((n, num_decodes, -1))
  return {"marginals": marginals_lib.label_marginals(ind, log_probs),
          "top1": ind[:, -1, :], "texts": texts, "log_probs": log_probs}


def score(marginals: np.ndarray, y_true: np.ndarray, tau: float) -> dict[str, float]:
  """Weighted P/R/F1 and per-side F1 of `marginals >= tau` against `[n, C]` truths."""
  pred = marginals_lib.threshold(marginals, tau)
  return {**weighted.weighted_prf(y_true, pred), **weighted.side_scores(y_true, pred)}


def truth(target_texts: Sequence[str], n: int) -> np.ndarray:
  """`[n, C]` indicators of the first n target texts."""
  return verbalizer.parse_many(list(target_texts)[:n])[0]


def texts_of(predicted: np.ndarray) -> list[str]:
  """`[n, 38]` 0/1 predictions -> target-format texts (`Liked Genres: A. Not Liked Genres: B`)."""
  k = genres_lib.NUM_GENRES
  return [formats.format_target([g for g, on in zip(genres_lib.GENRES, row[:k]) if on],
                                [g for g, on in zip(genres_lib.GENRES, row[k:]) if on])
          for row in np.asarray(predicted)]

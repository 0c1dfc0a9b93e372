"""Thresholded label marginals from beam search: `persoma-eval --num_decodes K --threshold T`.

For each user, beam search (length penalty off, so scores are sequence log-probabilities)
returns K decodes; `persoma.metrics.marginals` turns them into per-class marginals, and a class
is predicted when its marginal reaches the threshold. `--threshold tune` picks it on the
validation split (never on the split being scored). The greedy text is not needed: the best
beam alone is also scored (`beam_top1`), so the gain of the threshold over plain beam search
shows on its own.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from persoma.data import formats
from persoma.data import genres as genres_lib
from persoma.metrics import marginals as marginals_lib
from persoma.metrics import verbalizer
from persoma.metrics import weighted


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
  fn = beam_fn or make_beam_fn(trainer, num_decodes)
  n, (tokens, aux) = trainer.map_eval_batches(
      arrays, split, fn, max_examples, batch_size=batch_size,
      progress_every_secs=progress_every_secs, what=f"beam x{num_decodes}")
  flat = decode_fn(tokens.reshape((-1, tokens.shape[-1])))
  texts = [flat[i * num_decodes:(i + 1) * num_decodes] for i in range(n)]
  log_probs = np.asarray(aux["scores"])
  ind, _ = verbalizer.parse_many(flat)
  ind = ind.reshape((n, num_decodes, -1))
  return {"marginals": marginals_lib.label_marginals(ind, log_probs),
          "top1": ind[:, -1, :], "texts": texts, "log_probs": log_probs}


def score_indicators(pred: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
  """Weighted P/R/F1 and per-side F1 of `[n, C]` 0/1 predictions against `[n, C]` truths."""
  return {**weighted.weighted_prf(y_true, pred), **weighted.side_scores(y_true, pred)}


def score(marginals: np.ndarray, y_true: np.ndarray, tau: float) -> dict[str, float]:
  """`score_indicators` of `marginals >= tau`."""
  return score_indicators(marginals_lib.threshold(marginals, tau), y_true)


def truth(target_texts: Sequence[str], n: int) -> np.ndarray:
  """`[n, C]` indicators of the first n target texts."""
  return verbalizer.parse_many(list(target_texts)[:n])[0]


def texts_of(predicted: np.ndarray) -> list[str]:
  """`[n, 38]` 0/1 predictions -> target-format texts (`Liked Genres: A. Not Liked Genres: B`)."""
  k = genres_lib.NUM_GENRES
  return [formats.format_target([g for g, on in zip(genres_lib.GENRES, row[:k]) if on],
                                [g for g, on in zip(genres_lib.GENRES, row[k:]) if on])
          for row in np.asarray(predicted)]

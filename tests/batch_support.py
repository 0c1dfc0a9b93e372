"""Test helper (not a test file): a random model batch with a history, for the tiny-T5 tests."""

from __future__ import annotations

import numpy as np


def history_batch(rng: np.random.Generator, b: int, n: int, d: int, mask: np.ndarray | None = None,
                  inputs: int = 3, targets: int = 4, vocab: int = 96) -> dict[str, np.ndarray]:
  """Encoder / decoder tokens ``[b, inputs]`` / ``[b, targets]`` from ids ``[2, vocab)``,
  history embeddings ``[b, n, d]`` and ``mask`` (all items real by default)."""
  tgt = rng.integers(2, vocab, (b, targets)).astype(np.int32)
  return {
      "encoder_input_tokens": rng.integers(2, vocab, (b, inputs)).astype(np.int32),
      "decoder_input_tokens": np.concatenate([np.zeros((b, 1), np.int32), tgt[:, :-1]], 1),
      "decoder_target_tokens": tgt,
      "decoder_loss_weights": np.ones((b, targets), np.float32),
      "history_embeddings": rng.normal(size=(b, n, d)).astype(np.float32),
      "history_mask": np.ones((b, n), np.int32) if mask is None else mask,
  }

"""A tiny stand-in model with T5X's interface, and synthetic batches, for the runner tests.

Not a test file. `StandinModel` embeds the encoder tokens and the history embeddings, pools them,
and predicts every target position from the pooled vector plus a position embedding (no
autoregression), so it trains in a handful of steps. Its params carry logical axis names with
sizes divisible by 2, so they shard over a `model` axis of size 2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
          "Sci-Fi", "Thriller", "War", "Western")
# token ids: 0 pad, 1 EOS, 2 'Liked Genres:', 3 'Not Liked Genres:', 4.. genres, then 'None'.
LIKED, NOT_LIKED = 2, 3
NONE_ID = 4 + len(GENRES)
VOCAB = 32
T = 8  # decoder length


def _p(init, names):
  return nn.with_logical_partitioning(init, names)


class _Param(nn.Module):
  """Holds one named parameter (so paths read `adapter/kernel`, `task_prompt/prompt`)."""

  pname: str
  shape: tuple[int, ...]
  names: tuple[str, ...]
  scale: float = 0.3

  @nn.compact
  def __call__(self):
    return self.param(self.pname, _p(nn.initializers.normal(self.scale), self.names),
                      self.shape)


class _Net(nn.Module):
  vocab: int = VOCAB
  embed: int = 16
  mlp: int = 32
  length: int = T

  @nn.compact
  def __call__(self, batch):
    emb = self.param("token_embedder", _p(nn.initializers.normal(1.0), ("vocab", "embed")),
                     (self.vocab, self.embed))
    x = jnp.take(emb, batch["encoder_input_tokens"], axis=0)          # [B, L, E]
    m = (batch["encoder_input_tokens"] > 0).astype(jnp.float32)[..., None]
    pooled = (x * m).sum(1) / jnp.maximum(m.sum(1), 1.0)             # [B, E]
    if "history_embeddings" in batch:
      h = batch["history_embeddings"]                                  # [B, N, D]
      w_h = _Param("kernel", (h.shape[-1], self.embed), ("history_embed", "embed"),
                   name="adapter")()
      hm = batch["history_mask"].astype(jnp.float32)[..., None]
      pooled = pooled + ((h @ w_h) * hm).sum(1) / jnp.maximum(hm.sum(1), 1.0)
    pos = _Param("prompt", (self.length, self.embed), ("prompt", "embed"), 0.5,
                 name="task_prompt")()
    hid = pooled[:, None, :] + pos[None]                              # [B, T, E]
    wi = self.param("wi", _p(nn.initializers.lecun_normal(), ("embed", "mlp")),
                    (self.embed, self.mlp))
    wo = self.param("wo", _p(nn.initializers.lecun_normal(), ("mlp", "vocab")),
                    (self.mlp, self.vocab))
    return jax.nn.gelu(hid @ wi) @ wo                                  # [B, T, V]


@dataclasses.dataclass
class StandinModel:
  """T5X-style interface over `_Net`."""

  net: _Net = dataclasses.field(default_factory=_Net)

  def get_initial_variables(self, rng, input_shapes, input_types=None):
    batch = {k: jnp.zeros(s, (input_types or {}).get(k, jnp.float32))
             for k, s in input_shapes.items()}
    return self.net.init(rng, batch)

  def loss_fn(self, params, batch, dropout_rng):
    del dropout_rng
    logits = self.net.apply({"params": params}, batch)
    tgt = batch["decoder_target_tokens"]
    logp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(logp, tgt[..., None], -1)[..., 0]
    w = batch["decoder_loss_weights"]
    loss = (nll * w).sum() / jnp.maximum(w.sum(), 1.0)
    correct = (jnp.argmax(logits, -1) == tgt) * w
    return loss, {"loss": loss, "cross_ent_loss": loss, "z_loss": jnp.zeros(()),
                  "accuracy": correct.sum() / jnp.maximum(w.sum(), 1.0)}

  def predict_batch_with_aux(self, params, batch, rng=None):
    del rng
    logits = self.net.apply({"params": params}, batch)
    return jnp.argmax(logits, -1).astype(jnp.int32), {}


def decode(tokens: np.ndarray) -> list[str]:
  """Token rows -> `Liked Genres: A, B. Not Liked Genres: C` texts (stops at EOS)."""
  out = []
  for row in np.asarray(tokens):
    liked, disliked, side = [], [], None
    for t in row:
      t = int(t)
      if t in (0, 1):
        break
      if t == LIKED:
        side = liked
      elif t == NOT_LIKED:
        side = disliked
      elif side is not None and 4 <= t < NONE_ID and GENRES[t - 4] not in side:
        side.append(GENRES[t - 4])
    out.append(f"Liked Genres: {', '.join(liked) or 'None'}. "
               f"Not Liked Genres: {', '.join(disliked) or 'None'}")
  return out


def make_split(n: int, seed: int, L: int = 6, N: int = 4, D: int = 8):
  """n examples whose target (one liked + one disliked genre) is a function of the inputs.

  Returns (arrays {feature: [n, ...]}, target texts [n]).
  """
  rng = np.random.default_rng(seed)
  liked = rng.integers(0, 6, n)
  disliked = rng.integers(6, 12, n)
  enc = np.zeros((n, L), np.int32)
  enc[:, 0] = 4 + liked
  enc[:, 1] = 4 + disliked
  enc[:, 2:] = rng.integers(4, VOCAB, (n, L - 2))
  tgt = np.zeros((n, T), np.int32)
  tgt[:, 0], tgt[:, 1], tgt[:, 2], tgt[:, 3], tgt[:, 4] = LIKED, 4 + liked, NOT_LIKED, \
      4 + disliked, 1
  dec_in = np.concatenate([np.zeros((n, 1), np.int32), tgt[:, :-1]], 1)
  arrays = {
      "encoder_input_tokens": enc,
      "decoder_input_tokens": dec_in,
      "decoder_target_tokens": tgt,
      "decoder_loss_weights": (tgt > 0).astype(np.float32),
      "history_embeddings": rng.normal(size=(n, N, D)).astype(np.float32),
      "history_mask": np.ones((n, N), np.int32),
  }
  return arrays, decode(tgt)


def params_allclose(a: Any, b: Any, **kw) -> bool:
  return all(np.allclose(x, y, **kw) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

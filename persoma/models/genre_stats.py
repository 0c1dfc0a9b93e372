"""GenreStatsAdapter: one soft token per genre, from a soft per-genre rating histogram.

A persoma addition, not in the papers. The label the LM must write is a function of per-genre
rating statistics of the user's history, so this adapter computes their soft form explicitly:

1. per item, an MLP on the embedding gives genre logits ``[B, N, G]`` and star logits
   ``[B, N, S]`` (``G = num_genres`` = 19, ``S = num_stars`` = 5);
2. ``hist[b, g, s] = sum_n mask[b, n] * sigmoid(genre)[b, n, g] * softmax(star)[b, n, s]``, a soft
   count of the user's ``s``-star movies of genre ``g`` ``[B, G, S]``;
3. per genre, ``log1p`` counts, ``log1p`` total and mean star / S, with a learned genre embedding
   ``[G, E]``, go through a per-genre MLP that also sees the mean over genres (so genres can be
   ranked against each other), and a dense layer to ``H``: prompt tokens ``[B, G, H]``.

With ``length_features`` every genre's features also hold ``log1p`` of the number of items
shown and whether it is under ``N`` (:func:`length_features`): a sampler shows the whole
history of a user with fewer than ``N`` ratings, where the label rule applies exactly, while a
longer history's labels can only be estimated from its ``N`` shown items.

With ``rank_min_counts`` (e.g. ``(2, 3)``) every genre's features also hold, per minimum count
``k``, whether it has at least ``k`` movies and, if so, how many genres with at least ``k`` rank
above it by mean, best first, and how many below it, worst first (one-hot 0..4, 5+;
:func:`rank_features`), with the label rule's tie-breaks. The rule names the top 3 liked and
bottom 3 disliked genres among many candidates; a short history often has more than 3 over the
threshold, and the per-genre MLP sees one genre (and the mean over genres) at a time.

With ``genre_token_ids`` (the vocabulary ids of each genre's name, as the LM writes it) the
mean input embedding of genre ``g``'s name pieces (``token_embedding [V, H]``, the T5's shared
embedder, passed by ``PersomaNetwork``) is added to token ``g``, so the LM sees which genre a
token describes in its own word embedding, as it would in a text prompt.

The item heads can learn from the LM loss alone, or be supervised item by item (their logits are
sown into the ``intermediates`` collection; :func:`item_loss` scores them against the catalog's
genres and stars, and ``PersomaModel.item_loss_weight`` adds that to the T5 loss). A user with
no items gets all-zero tokens and an all-zero mask, as for the other adapters.
"""
from __future__ import annotations

from typing import Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from persoma.models import adapters

Array = jax.Array
GENRE_LOGITS = adapters.ITEM_GENRE_LOGITS
STAR_LOGITS = adapters.ITEM_STAR_LOGITS


class GenreStatsAdapter(adapters.Adapter):
  """``[B, N, D] -> ([B, G, H], mask [B, G])``; see the module docstring."""
  num_genres: int = 19
  num_stars: int = 5
  hidden_dim: int = 512      # width of the item MLP and of the per-genre MLP
  genre_embed_dim: int = 32  # E
  genre_token_ids: Optional[tuple[tuple[int, ...], ...]] = None  # per genre, its name's ids
  length_features: bool = False  # add the shown-item count and "fewer than N" to each genre
  rank_min_counts: tuple[int, ...] = ()  # add each genre's rank among genres with >= k movies

  @property
  def uses_token_embedding(self) -> bool:
    """True when ``PersomaNetwork`` must pass the T5's ``token_embedding``."""
    return self.genre_token_ids is not None

  def num_tokens(self, num_items: int) -> int:
    return self.num_genres

  @property
  def sows_item_logits(self) -> bool:
    return True

  @nn.compact
  def __call__(self, history_embeddings: Array, history_mask: Array,
               enable_dropout: bool = False,
               token_embedding: Optional[Array] = None) -> tuple[Array, Array]:
    mask = self._check(history_embeddings, history_mask)  # [B, N] float32
    if self.genre_token_ids is not None:
      if len(self.genre_token_ids) != self.num_genres or not all(self.genre_token_ids):
        raise ValueError(f"GenreStatsAdapter.genre_token_ids must give a non-empty id tuple for "
                         f"each of the {self.num_genres} genres, got {self.genre_token_ids}")
      if token_embedding is None:
        raise ValueError("GenreStatsAdapter.genre_token_ids is set but no token_embedding "
                         "[V, H] was passed")
    if min(self.num_genres, self.num_stars, self.hidden_dim, self.genre_embed_dim) < 1:
      sizes = (self.num_genres, self.num_stars, self.hidden_dim, self.genre_embed_dim)
      raise ValueError("GenreStatsAdapter.num_genres, .num_stars, .hidden_dim and "
                       f".genre_embed_dim must be >= 1, got {sizes}")
    drop = nn.Dropout(self.dropout_rate)
    x = history_embeddings.astype(self.dtype)
    h = nn.gelu(adapters.dense(self.hidden_dim, ("history_embed", "mlp"), "item_hidden",
                               self.dtype)(x))
    h = drop(h, deterministic=not enable_dropout)
    genre_logits = adapters.dense(self.num_genres, ("mlp", "genres"), "item_genres",
                                  jnp.float32)(h)  # [B, N, G]
    star_logits = adapters.dense(self.num_stars, ("mlp", "stars"), "item_stars",
                                 jnp.float32)(h)  # [B, N, S]
    self.sow("intermediates", GENRE_LOGITS, genre_logits)
    self.sow("intermediates", STAR_LOGITS, star_logits)
    hist = jnp.einsum("bng,bns,bn->bgs", jax.nn.sigmoid(genre_logits),
                      jax.nn.softmax(star_logits), mask)  # [B, G, S]
    feats = genre_features(hist)  # [B, G, S + 2]
    if self.length_features:
      feats = jnp.concatenate([feats, length_features(mask, self.num_genres)], axis=-1)
    if self.rank_min_counts:
      if min(self.rank_min_counts) < 1:
        raise ValueError("GenreStatsAdapter.rank_min_counts must be >= 1, got "
                         f"{self.rank_min_counts}")
      feats = jnp.concatenate(
          [feats] + [rank_features(jax.lax.stop_gradient(hist), k)
                     for k in self.rank_min_counts], axis=-1)
    feats = feats.astype(self.dtype)  # [B, G, S + 2 (+ 2) (+ 13 per rank count)]
    genre_emb = self.param(
        "genre_embedding",
        nn.with_logical_partitioning(nn.initializers.normal(0.1), ("genres", "genre_embed")),
        (self.num_genres, self.genre_embed_dim), jnp.float32)
    b = feats.shape[0]
    g = jnp.concatenate([feats, jnp.broadcast_to(genre_emb.astype(self.dtype),
                                                 (b,) + genre_emb.shape)], axis=-1)
    g = nn.gelu(adapters.dense(self.hidden_dim, ("genre_embed", "mlp"), "genre_hidden_0",
                               self.dtype)(g))  # [B, G, W]
    g = jnp.concatenate([g, jnp.broadcast_to(g.mean(axis=1, keepdims=True), g.shape)], -1)
    g = nn.gelu(adapters.dense(self.hidden_dim, ("mlp", "mlp"), "genre_hidden_1",
                               self.dtype)(g))
    g = drop(g, deterministic=not enable_dropout)
    out = adapters.dense(self.d_model, adapters.OUT_AXES, "out", self.dtype)(g)  # [B, G, H]
    if self.genre_token_ids is not None:
      out = out + genre_name_embeddings(token_embedding, self.genre_token_ids)[None].astype(
          out.dtype)
    has_items = (mask.sum(axis=1, keepdims=True) > 0).astype(jnp.float32)  # [B, 1]
    out_mask = jnp.broadcast_to(has_items, out.shape[:2])
    return out * out_mask[..., None].astype(out.dtype), out_mask.astype(jnp.int32)


def genre_name_embeddings(token_embedding: Array,
                          token_ids: tuple[tuple[int, ...], ...]) -> Array:
  """``[G, H]``: per genre, the mean of ``token_embedding [V, H]`` over its name's ids."""
  width = max(len(ids) for ids in token_ids)
  idx = jnp.asarray([list(ids) + [0] * (width - len(ids)) for ids in token_ids], jnp.int32)
  weight = jnp.asarray([[1.0 / len(ids)] * len(ids) + [0.0] * (width - len(ids))
                        for ids in token_ids], jnp.float32)  # [G, width]
  return jnp.einsum("gw,gwh->gh", weight, token_embedding[idx].astype(jnp.float32))


def genre_features(hist: Array) -> Array:
  """``[B, G, S]`` soft star counts -> ``[B, G, S + 2]``: ``log1p`` counts, ``log1p`` total and
  mean star / S (0 for a genre with no movie)."""
  total, mean = _total_and_mean(hist)
  return jnp.concatenate([jnp.log1p(hist), jnp.log1p(total[..., None]),
                          mean[..., None] / hist.shape[-1]], axis=-1)


def _total_and_mean(hist: Array) -> tuple[Array, Array]:
  """``[B, G, S]`` soft star counts -> per genre ``[B, G]`` movie count and mean star (1..S;
  0 for a genre with no movie)."""
  total = hist.sum(axis=-1)
  stars = jnp.arange(1, hist.shape[-1] + 1, dtype=hist.dtype)
  return total, (hist * stars).sum(axis=-1) / jnp.maximum(total, 1e-6)


def length_features(mask: Array, num_genres: int) -> Array:
  """``[B, N]`` item mask -> ``[B, G, 2]``: ``log1p`` of the number of items shown, and 1 where
  fewer than ``N`` are (the user's whole history), the same for every genre."""
  f = adapters.history_length(mask)  # [B, 2]
  return jnp.broadcast_to(f[:, None, :], (f.shape[0], num_genres, 2))


RANK_CAP = 5  # rank_features counts the genres above (below) a genre up to this, then "5+"


def rank_features(hist: Array, min_count: int) -> Array:
  """``[B, G, S]`` soft star counts -> ``[B, G, 1 + 2 * (RANK_CAP + 1)]``: 1 where a genre has
  at least ``min_count`` movies, then (for such genres; zeros otherwise) one-hot how many such
  genres rank above it best first (higher mean; ties: more movies, then genre order) and how
  many rank below it worst first (lower mean; ties: more movies, then genre order), ``0 ..
  RANK_CAP - 1`` or ``RANK_CAP`` for more, as ``persoma.data.labels.labels_from_stats`` ranks
  the liked and disliked genres. Means are compared to 1e-3 stars and counts rounded, so the
  soft counts of trained item heads rank as their exact counts do. Not differentiable."""
  total, mean = _total_and_mean(hist)  # [B, G] each
  mean = jnp.round(mean * 1000.0)
  count = jnp.round(total)
  ok = count >= min_count  # [B, G]
  g = hist.shape[1]
  idx = jnp.arange(g)
  # [B, G (this genre), G (other genre)]: the other genre counts as ranked before this one.
  same_mean = mean[:, None, :] == mean[:, :, None]
  tie_first = (count[:, None, :] > count[:, :, None]) | (
      (count[:, None, :] == count[:, :, None]) & (idx[None, :] < idx[:, None])[None])
  others = ok[:, None, :] & ~jnp.eye(g, dtype=bool)[None]

  def ahead(better: Array) -> Array:  # [B, G, G] -> [B, G, RANK_CAP + 1] one-hot
    n = jnp.sum(others & (better | (same_mean & tie_first)), axis=-1)
    return jax.nn.one_hot(jnp.minimum(n, RANK_CAP), RANK_CAP + 1) * ok[..., None]

  above = ahead(mean[:, None, :] > mean[:, :, None])
  below = ahead(mean[:, None, :] < mean[:, :, None])
  return jnp.concatenate([ok[..., None].astype(hist.dtype), above.astype(hist.dtype),
                          below.astype(hist.dtype)], axis=-1)


def find_item_logits(intermediates: Mapping) -> tuple[Array, Array] | None:
  """The sown ``(genre [B, N, G], star [B, N, S])`` logits in an ``intermediates`` tree, or None."""
  found = {}

  def walk(tree):
    for k, v in tree.items():
      if k in (GENRE_LOGITS, STAR_LOGITS):
        found[k] = v[0] if isinstance(v, tuple) else v
      elif isinstance(v, Mapping):
        walk(v)

  walk(intermediates)
  if len(found) != 2:
    return None
  return found[GENRE_LOGITS], found[STAR_LOGITS]


def item_loss(genre_logits: Array, star_logits: Array, genres: Array, stars: Array,
              mask: Array) -> Array:
  """Mean over real items of genre sigmoid cross-entropy (mean over G) plus star cross-entropy.

  Args:
    genre_logits: ``[B, N, G]``; star_logits: ``[B, N, S]``.
    genres: ``[B, N, G]`` 0/1 targets; stars: ``[B, N]`` int, 0-based star; mask: ``[B, N]``.
  """
  mask = (mask > 0).astype(jnp.float32)
  per_item = (optax.sigmoid_binary_cross_entropy(genre_logits, genres.astype(jnp.float32))
              .mean(axis=-1)
              + optax.softmax_cross_entropy_with_integer_labels(star_logits,
                                                                stars.astype(jnp.int32)))
  return jnp.sum(per_item * mask) / jnp.maximum(jnp.sum(mask), 1.0)

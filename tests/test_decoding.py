"""Greedy, beam search and temperature sampling: T5X's tokens/scores on the fixture, EOS handling,
exactness (beams) and the sampled distribution (samples) on a toy LM."""
import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from persoma.models.t5 import decoding
from persoma.models.t5.config import T5Config
from persoma.models.t5.network import Transformer, encoder_mask

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "fixtures" / "t5x_tiny"


@pytest.fixture(scope="module")
def fixture():
  if not (FIXTURE / "params.npz").exists():
    pytest.skip(f"T5X fixture not found at {FIXTURE} (shared data absent)")
  params = traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v) for k, v in
                                         np.load(FIXTURE / "params.npz").items()})
  return params, dict(np.load(FIXTURE / "reference.npz"))


def test_greedy_and_beam_match_t5x_under_jit(fixture):
  params, ref = fixture
  model = Transformer(T5Config.tiny(vocab_size=96))
  enc_t = ref["encoder_input_tokens"]
  max_len = ref["decoder_input_tokens"].shape[1]

  @jax.jit
  def run(p, tokens):
    encoded = model.apply({"params": p}, tokens, method=model.encode)
    mask = encoder_mask(tokens)
    greedy = decoding.predict(model, {"params": p}, encoded, mask, max_len)
    beams = decoding.predict(model, {"params": p}, encoded, mask, max_len, num_decodes=4,
                             return_all_decodes=True)
    # Cacheless reference: re-run the full decoder on the greedy prefix (teacher forcing).
    dec_in = jnp.pad(greedy[0][:, :-1], ((0, 0), (1, 0)))
    full_logits = model.apply({"params": p}, tokens, dec_in)
    return greedy, beams, full_logits

  (g_tokens, g_scores), (b_tokens, b_scores), full = run(params, enc_t)
  np.testing.assert_array_equal(g_tokens, ref["greedy_decode"])  # incl. the generated 0
  np.testing.assert_allclose(g_scores, ref["greedy_decode_scores"], atol=1e-5, rtol=0)
  np.testing.assert_array_equal(b_tokens, ref["beam4_decodes"])
  np.testing.assert_allclose(b_scores, ref["beam4_scores"], atol=1e-5, rtol=0)
  assert np.all(np.diff(np.asarray(b_scores), axis=1) >= 0)  # ascending, best last
  # The KV-cached steps agree with the cacheless full decoder pass.
  np.testing.assert_array_equal(np.argmax(full, -1), g_tokens)
  log_probs = jax.nn.log_softmax(full)
  chosen = np.take_along_axis(np.asarray(log_probs), np.asarray(g_tokens)[..., None], -1)[..., 0]
  np.testing.assert_allclose(chosen.sum(-1), g_scores, atol=1e-5)


# ---------------------------------------------------------------- a toy bigram LM (no network)

VOCAB, EOS = 5, 1


def _bigram_table(seed):
  rng = np.random.default_rng(seed)
  return np.log(rng.dirichlet(np.ones(VOCAB) * 0.7, size=VOCAB)).astype(np.float32)


def _bigram_step(table, n_rows):
  """tokens_to_logits for a bigram LM; the 'cache' counts steps to exercise cache plumbing."""
  table = jnp.asarray(table)

  def step(tokens, cache):
    logits = table[tokens[:, 0]]
    return logits, {"steps": cache["steps"] + 1, "index": cache["index"] + 1}

  return step, {"steps": jnp.zeros((n_rows, 1), jnp.int32), "index": jnp.array(0, jnp.int32)}


def _brute_force(table, max_len, alpha):
  """Every finished sequence's T5X score, plus the best unfinished log-prob."""
  finished, live = [], []
  for length in range(1, max_len + 1):
    for seq in itertools.product(range(VOCAB), repeat=length):
      if EOS in seq[:-1]:
        continue
      prev, lp = 0, 0.0
      for tok in seq:
        lp += float(table[prev, tok])
        prev = tok
      if seq[-1] == EOS:
        finished.append((lp / ((5.0 + length) / 6.0) ** alpha, seq))
      elif length == max_len:
        live.append((lp, seq))
  return sorted(finished), sorted(live)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _jitted_beam(table, max_len, k):
  """Beam search over two identical rows; one compile for every table."""
  step, cache = _bigram_step(table, 2 * k)
  return decoding.beam_search(step, cache, 2, max_len, k, 0.6, EOS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_is_exact_with_enough_beams(seed):
  table, max_len, k = _bigram_table(seed), 3, 16
  seqs, scores = _jitted_beam(jnp.asarray(table), max_len, k)
  finished, _ = _brute_force(table, max_len, 0.6)
  best_score, best_seq = finished[-1]
  assert tuple(int(t) for t in np.asarray(seqs[0, -1, :len(best_seq)])) == best_seq
  assert np.all(np.asarray(seqs[0, -1, len(best_seq):]) == 0)
  np.testing.assert_allclose(scores[0, -1], best_score, rtol=1e-5)
  np.testing.assert_allclose(scores[0], scores[1])  # identical rows -> identical beams
  # The top-4 finished scores come out in ascending order.
  np.testing.assert_allclose(scores[0, -4:], [s for s, _ in finished[-4:]], rtol=1e-5)


def test_greedy_stops_at_eos_and_pads_after():
  # Row-independent bigram: 0 -> 3 -> 2 -> EOS -> (would be 4) ; greedy must emit 0 after EOS.
  table = np.full((VOCAB, VOCAB), -5.0, np.float32)
  table[0, 3], table[3, 2], table[2, EOS], table[EOS, 4], table[4, 4] = 0, 0, 0, 0, 0
  table = np.asarray(jax.nn.log_softmax(table))
  step, cache = _bigram_step(table, 2)
  tokens, scores = jax.jit(lambda c: decoding.greedy_search(step, c, 2, 6, EOS))(cache)
  np.testing.assert_array_equal(tokens, [[3, 2, EOS, 0, 0, 0]] * 2)
  expected = table[0, 3] + table[3, 2] + table[2, EOS]  # up to and including EOS
  np.testing.assert_allclose(scores, [expected] * 2, rtol=1e-6)
  # A generated 0 is not a stop token.
  table2 = np.full((VOCAB, VOCAB), -5.0, np.float32)
  table2[:, 0] = 0.0
  step2, cache2 = _bigram_step(np.asarray(jax.nn.log_softmax(table2)), 1)
  tokens2, _ = decoding.greedy_search(step2, cache2, 1, 4, EOS)
  np.testing.assert_array_equal(tokens2, [[0, 0, 0, 0]])


def _output(row):
  """A decoded row up to and including its first EOS (the whole row if none)."""
  row = [int(t) for t in row]
  return tuple(row[:row.index(EOS) + 1] if EOS in row else row)


def _sequence_log_prob(table, seq):
  prev, lp = 0, 0.0
  for tok in seq:
    lp += float(table[prev, tok])
    prev = tok
  return lp


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _jitted_sample(table, rng, rows, max_len, temperature, topk):
  step, cache = _bigram_step(table, rows)
  return decoding.temperature_sample(step, cache, rng, rows, max_len, temperature, topk, EOS)


def test_samples_follow_the_model_distribution_and_are_scored_by_it():
  table, rows, max_len = _bigram_table(3), 20000, 2
  tokens, scores = _jitted_sample(jnp.asarray(table), jax.random.PRNGKey(0), rows, max_len,
                                  1.0, 0)
  tokens, scores = np.asarray(tokens), np.asarray(scores)
  # Every sample's score is its log-probability under the bigram, up to and including EOS.
  seqs = [_output(row) for row in tokens]
  np.testing.assert_allclose(scores, [_sequence_log_prob(table, q) for q in seqs], atol=1e-5)
  for row in tokens:  # after EOS only 0s
    if EOS in row:
      assert np.all(row[list(row).index(EOS) + 1:] == 0)
  # Empirical frequencies of the complete outputs match their probabilities (binomial 5 sigma).
  counts: dict = {}
  for q in seqs:
    counts[q] = counts.get(q, 0) + 1
  for q, c in counts.items():
    prob = float(np.exp(_sequence_log_prob(table, q)))
    assert abs(c / rows - prob) <= 5 * np.sqrt(prob * (1 - prob) / rows) + 1e-4, q
  assert abs(sum(float(np.exp(_sequence_log_prob(table, q))) for q in counts) - 1) < 1e-3


def test_sampling_is_seeded_and_temperature_zero_or_top1_is_greedy():
  table = jnp.asarray(_bigram_table(4))
  a, _ = _jitted_sample(table, jax.random.PRNGKey(7), 64, 4, 1.0, 0)
  b, _ = _jitted_sample(table, jax.random.PRNGKey(7), 64, 4, 1.0, 0)
  c, _ = _jitted_sample(table, jax.random.PRNGKey(8), 64, 4, 1.0, 0)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  # The argmax path, walked in numpy (greedy_search is temperature_sample at T=0, as T5X).
  path = [0]
  while len(path) < 5 and path[-1] != EOS:
    path.append(int(np.argmax(table[path[-1]])))
  expected = tuple(path[1:])
  for temperature, topk in ((0.0, 0), (1.0, 1), (5.0, 1)):
    t, s = _jitted_sample(table, jax.random.PRNGKey(1), 3, 4, temperature, topk)
    for row in np.asarray(t):
      assert _output(row) == expected
      assert np.all(row[len(expected):] == 0)
    np.testing.assert_allclose(s, [_sequence_log_prob(np.asarray(table), expected)] * 3,
                               rtol=1e-6)
  # top-2 only ever draws one of each step's two most likely tokens.
  t, _ = _jitted_sample(table, jax.random.PRNGKey(2), 256, 3, 1.0, 2)
  top2 = np.argsort(np.asarray(table), axis=1)[:, -2:]
  for row in np.asarray(t):
    q = _output(row)
    assert all(tok in top2[prev] for prev, tok in zip((0,) + q[:-1], q)), q


def test_bad_arguments_are_named(fixture):
  params, ref = fixture
  model = Transformer(T5Config.tiny(vocab_size=96))
  encoded = jnp.zeros((2, 12, 32))
  with pytest.raises(ValueError, match="unknown decode_method 'topk'.*'sample'"):
    decoding.predict(model, {"params": params}, encoded, jnp.ones((2, 12)), 4,
                     decode_method="topk")
  with pytest.raises(ValueError, match="encoder_mask"):
    decoding.predict(model, {"params": params}, encoded, jnp.ones((2, 11)), 4)
  with pytest.raises(ValueError, match="greedy decoding gives one decode"):
    decoding.predict(model, {"params": params}, encoded, jnp.ones((2, 12)), 4, num_decodes=2,
                     decode_method="greedy")
  with pytest.raises(ValueError, match="decode=True needs max_decode_length"):
    model.apply({"params": params}, encoded, jnp.ones((2, 12)), jnp.zeros((2, 1), jnp.int32),
                decode=True, method=model.decode, mutable=["cache"])
  step, cache = _bigram_step(_bigram_table(0), 2)
  with pytest.raises(ValueError, match="max_decode_len"):
    decoding.greedy_search(step, cache, 2, 0)
  for kwargs, match in (({"temperature": -1.0}, "temperature must be >= 0"),
                        ({"temperature": float("nan")}, "temperature must be >= 0"),
                        ({"topk": -2}, "topk must be >= 0")):
    with pytest.raises(ValueError, match=match):
      decoding.temperature_sample(step, cache, jax.random.PRNGKey(0), 2, 3, **kwargs)
  with pytest.raises(ValueError, match="max_decode_len"):
    decoding.temperature_sample(step, cache, jax.random.PRNGKey(0), 2, 0)

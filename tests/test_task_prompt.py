"""Task prompt: shape, logical axes, each initialiser, re-init from a restored embedding table."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from persoma.models.prompts import TaskPrompt, init_prompt_from_embeddings

H = 8


def _table(v=50):
  return jnp.asarray(np.random.default_rng(0).normal(size=(v, H)).astype(np.float32))


def _init(module, *args, seed=0):
  return module.init(jax.random.PRNGKey(seed), *args)   # eager: tiny, cheaper than a compile


def test_default_length_axes_and_uniform_range():
  module = TaskPrompt(d_model=H, init_scale=0.25)
  boxed = _init(module)["params"]["prompt"]
  assert isinstance(boxed, nn.LogicallyPartitioned)
  assert boxed.names == ("prompt", "embed")
  prompt = np.asarray(boxed.value)
  assert prompt.shape == (20, H)
  assert prompt.min() >= -0.25 and prompt.max() <= 0.25 and prompt.std() > 0.05
  out = jax.jit(module.apply)({"params": nn.unbox(_init(module)["params"])})
  np.testing.assert_array_equal(out, prompt)
  # same seed -> same prompt; other seed -> different
  np.testing.assert_array_equal(nn.unbox(_init(module)["params"])["prompt"], prompt)
  assert not np.allclose(nn.unbox(_init(module, seed=1)["params"])["prompt"], prompt)


def test_vocab_init_samples_rows_from_range():
  table = _table()
  module = TaskPrompt(length=6, d_model=H, init_method="vocab", vocab_start=10, vocab_end=40)
  prompt = np.asarray(nn.unbox(_init(module, table)["params"])["prompt"])
  rows = np.asarray(table)
  for row in prompt:
    hits = np.where(np.all(rows == row, axis=1))[0]
    assert hits.size == 1 and 10 <= hits[0] < 40
  assert len({tuple(r) for r in prompt}) == 6   # drawn without replacement


def test_tokens_init_cycles_token_embeddings():
  table = _table()
  module = TaskPrompt(length=5, d_model=H, init_method="tokens", init_token_ids=(3, 7))
  prompt = nn.unbox(_init(module, table)["params"])["prompt"]
  np.testing.assert_array_equal(prompt, np.asarray(table)[[3, 7, 3, 7, 3]])


def test_reinit_from_restored_embeddings():
  table = _table()
  params = {"token_embedder": {"embedding": table},
            "task_prompt": {"prompt": jnp.zeros((4, H))}, "encoder": {"x": jnp.ones(2)}}
  new = init_prompt_from_embeddings(params, jax.random.PRNGKey(0), vocab_end=20)
  assert new["task_prompt"]["prompt"].shape == (4, H)
  assert all(np.any(np.all(np.asarray(table)[:20] == r, axis=1))
             for r in np.asarray(new["task_prompt"]["prompt"]))
  assert new["encoder"] is params["encoder"]
  assert np.all(np.asarray(params["task_prompt"]["prompt"]) == 0)  # input not mutated


def test_bad_config_errors():
  with pytest.raises(ValueError, match=r"init_method='bogus' is unknown.*uniform"):
    TaskPrompt(d_model=H, init_method="bogus").init(jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="needs vocab_embeddings"):
    TaskPrompt(d_model=H, init_method="vocab").init(jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="outside the vocabulary"):
    TaskPrompt(d_model=H, init_method="tokens", init_token_ids=(99,)).init(
        jax.random.PRNGKey(0), _table())
  with pytest.raises(ValueError, match="d_model is not set"):
    TaskPrompt().init(jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="task_prompt"):
    init_prompt_from_embeddings({"token_embedder": {"embedding": _table()}},
                                jax.random.PRNGKey(0))

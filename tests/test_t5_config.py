"""T5Config presets, overrides and validation."""
import dataclasses

import pytest

from persoma.models.t5.config import PRESETS, T5Config, get_config

# Published T5 v1.1 / FlanT5 sizes: (emb, heads, head_dim, enc, dec, mlp).
PUBLISHED = {
    "small": (512, 6, 64, 8, 8, 1024),
    "base": (768, 12, 64, 12, 12, 2048),
    "large": (1024, 16, 64, 24, 24, 2816),
    "xl": (2048, 32, 64, 24, 24, 5120),
    "xxl": (4096, 64, 64, 24, 24, 10240),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_presets_have_published_dims(name):
  for cfg in (getattr(T5Config, name)(), get_config(name), T5Config.preset(name)):
    dims = (cfg.emb_dim, cfg.num_heads, cfg.head_dim, cfg.num_encoder_layers,
            cfg.num_decoder_layers, cfg.mlp_dim)
    assert dims == PUBLISHED[name]
    assert cfg.vocab_size == 32128
    assert cfg.mlp_activations == ("gelu", "linear")
    assert not cfg.logits_via_embedding
    assert cfg.lora_rank == 0


def test_tiny_matches_fixture_dims_and_presets_listed():
  cfg = T5Config.tiny(vocab_size=96)
  assert (cfg.emb_dim, cfg.num_heads, cfg.head_dim, cfg.mlp_dim) == (32, 4, 8, 64)
  assert (cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.vocab_size) == (2, 2, 96)
  assert set(PRESETS) == set(PUBLISHED) | {"tiny", "mini"}


def test_overrides_and_frozen_and_hashable():
  cfg = T5Config.base(lora_rank=8, lora_alpha=32.0, dropout_rate=0.1, dtype="bfloat16")
  assert cfg.lora_scale == 4.0 and cfg.dropout_rate == 0.1 and cfg.emb_dim == 768
  with pytest.raises(dataclasses.FrozenInstanceError):
    cfg.emb_dim = 1
  assert hash(cfg) == hash(T5Config.base(lora_rank=8, lora_alpha=32.0, dropout_rate=0.1,
                                         dtype="bfloat16"))
  # lists are normalised to tuples so the config stays hashable
  assert T5Config.tiny(mlp_activations=["gelu", "linear"]).mlp_activations == ("gelu", "linear")
  assert T5Config.tiny().lora_scale == 0.0


def test_unknown_preset_names_the_choices():
  with pytest.raises(ValueError, match=r"Unknown T5 preset 'huge'.*small, base"):
    get_config("huge")


@pytest.mark.parametrize("field,value,pattern", [
    ("emb_dim", 0, "emb_dim must be a positive int"),
    ("num_heads", -2, "num_heads"),
    ("lora_rank", -1, "lora_rank"),
    ("dropout_rate", 1.0, "dropout_rate"),
    ("dtype", "float64x", "dtype"),
    ("mlp_activations", ("gelu", "tanhh"), "tanhh"),
    ("lora_targets", ("query", "qkv"), "qkv"),
])
def test_bad_values_are_named(field, value, pattern):
  with pytest.raises(ValueError, match=pattern):
    T5Config.tiny(**{field: value})


def test_unknown_override_field_is_named():
  with pytest.raises(ValueError, match="emb_size"):
    T5Config.small(emb_size=3)

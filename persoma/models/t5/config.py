"""T5 v1.1 / FlanT5 hyper-parameters as a frozen dataclass, with the published presets.

`T5Config.base()` etc. return the published sizes; any field may be overridden:
`T5Config.small(dropout_rate=0.1, lora_rank=8)`. `get_config('base')` selects a preset by name
(gin-friendly). The field names follow `t5x.examples.t5.network.T5Config` so gin files that set
`network.T5Config.*` translate one to one.
"""
from __future__ import annotations

import dataclasses
from typing import Any

# (emb_dim, num_heads, head_dim, num_encoder_layers, num_decoder_layers, mlp_dim)
_PRESET_DIMS: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (32, 4, 8, 2, 2, 64),  # test size; matches ../shared/fixtures/t5x_tiny (vocab 96 there)
    "mini": (128, 4, 32, 2, 2, 512),  # CPU experiments (benchmarks/reproduce.py); not published
    "small": (512, 6, 64, 8, 8, 1024),
    "base": (768, 12, 64, 12, 12, 2048),
    "large": (1024, 16, 64, 24, 24, 2816),
    "xl": (2048, 32, 64, 24, 24, 5120),
    "xxl": (4096, 64, 64, 24, 24, 10240),
}
PRESETS: tuple[str, ...] = tuple(_PRESET_DIMS)

_DTYPES = ("float32", "bfloat16", "float16")
_ACTIVATIONS = ("gelu", "relu", "linear", "silu", "swish", "gelu_exact")
DEFAULT_LORA_TARGETS: tuple[str, ...] = ("query", "key", "value", "out", "wi_0", "wi_1", "wo")


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Architecture of a T5 v1.1 encoder-decoder (RMS norm, relative position buckets, gated GELU).

  Attributes:
    vocab_size: number of token ids (T5's SentencePiece model padded to 32128).
    emb_dim: d_model `H`.
    num_heads: attention heads per layer.
    head_dim: width of each head; q/k/v kernels are `[H, num_heads*head_dim]` (`joined_kv`).
    num_encoder_layers / num_decoder_layers: stack depths.
    mlp_dim: hidden width of the gated MLP (`wi_0`, `wi_1`: `[H, mlp_dim]`, `wo`: `[mlp_dim, H]`).
    mlp_activations: one activation per `wi_*` branch; the branches are multiplied.
    dropout_rate: residual, attention-weight and MLP-hidden dropout (0 at inference).
    dtype: compute dtype ('float32' or 'bfloat16'); parameters are always stored float32.
    logits_via_embedding: tie the output projection to `token_embedder` (T5 v1.0 style).
    float32_attention_logits: compute q.k in float32 when `dtype` is bfloat16.
    relpos_num_buckets / relpos_max_distance: relative position bucketing (T5: 32 / 128).
    layer_norm_epsilon: RMS norm epsilon.
    lora_rank: rank of LoRA adapters on `lora_targets` (0 = no LoRA params at all).
    lora_alpha: LoRA scale numerator; the update is `(lora_alpha / lora_rank) * x @ A @ B`.
    lora_targets: names of the dense layers that get LoRA (attention query/key/value/out and the
      MLP wi_0/wi_1/wo by default).
  """

  vocab_size: int = 32128
  emb_dim: int = 512
  num_heads: int = 6
  head_dim: int = 64
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  mlp_dim: int = 1024
  mlp_activations: tuple[str, ...] = ("gelu", "linear")
  dropout_rate: float = 0.0
  dtype: str = "float32"
  logits_via_embedding: bool = False
  float32_attention_logits: bool = False
  relpos_num_buckets: int = 32
  relpos_max_distance: int = 128
  layer_norm_epsilon: float = 1e-6
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS

  def __post_init__(self):
    positive = ("vocab_size", "emb_dim", "num_heads", "head_dim", "num_encoder_layers",
                "num_decoder_layers", "mlp_dim", "relpos_num_buckets", "relpos_max_distance")
    for name in positive:
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"T5Config.{name} must be a positive int, got {value!r}")
    if not isinstance(self.lora_rank, int) or self.lora_rank < 0:
      raise ValueError(f"T5Config.lora_rank must be an int >= 0, got {self.lora_rank!r}")
    if self.lora_rank > 0 and not self.lora_alpha > 0:
      raise ValueError(f"T5Config.lora_alpha must be > 0 when lora_rank > 0, got {self.lora_alpha!r}")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"T5Config.dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
    if self.dtype not in _DTYPES:
      raise ValueError(f"T5Config.dtype must be one of {_DTYPES}, got {self.dtype!r}")
    if self.relpos_num_buckets % 2:
      raise ValueError(f"T5Config.relpos_num_buckets must be even, got {self.relpos_num_buckets}")
    # Tuples, not lists, so the config stays hashable (used as a jit static argument).
    object.__setattr__(self, "mlp_activations", tuple(self.mlp_activations))
    object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
    if not self.mlp_activations:
      raise ValueError("T5Config.mlp_activations must name at least one activation")
    for act in self.mlp_activations:
      if act not in _ACTIVATIONS:
        raise ValueError(f"T5Config.mlp_activations: unknown activation {act!r}; "
                         f"known: {_ACTIVATIONS}")
    unknown = set(self.lora_targets) - set(DEFAULT_LORA_TARGETS) - {"wi"}
    if unknown:
      raise ValueError(f"T5Config.lora_targets: unknown layer names {sorted(unknown)}; "
                       f"known: {DEFAULT_LORA_TARGETS + ('wi',)}")

  @property
  def lora_scale(self) -> float:
    """`lora_alpha / lora_rank` (0.0 when LoRA is off)."""
    return self.lora_alpha / self.lora_rank if self.lora_rank else 0.0

  @property
  def jnp_dtype(self) -> Any:
    import jax.numpy as jnp  # local: keep the config importable without jax
    return jnp.dtype(self.dtype) if self.dtype != "bfloat16" else jnp.bfloat16

  def replace(self, **overrides) -> "T5Config":
    return dataclasses.replace(self, **overrides)

  @classmethod
  def preset(cls, name: str, **overrides) -> "T5Config":
    """The published dims of preset `name` (see PRESETS), with `overrides` applied."""
    if name not in _PRESET_DIMS:
      raise ValueError(f"Unknown T5 preset {name!r}; known presets: {', '.join(PRESETS)}")
    emb, heads, head_dim, n_enc, n_dec, mlp = _PRESET_DIMS[name]
    fields = dict(emb_dim=emb, num_heads=heads, head_dim=head_dim, num_encoder_layers=n_enc,
                  num_decoder_layers=n_dec, mlp_dim=mlp)
    known = {f.name for f in dataclasses.fields(cls)}
    bad = set(overrides) - known
    if bad:
      raise ValueError(f"T5Config.{name}(): unknown fields {sorted(bad)}")
    fields.update(overrides)
    return cls(**fields)

  @classmethod
  def tiny(cls, **overrides) -> "T5Config":
    """emb 32, 4 heads x 8, 2+2 layers, mlp 64 (tests). Vocab 32128 unless overridden."""
    return cls.preset("tiny", **overrides)

  @classmethod
  def small(cls, **overrides) -> "T5Config":
    """T5 v1.1 / FlanT5 small: emb 512, 6x64 heads, 8+8 layers, mlp 1024."""
    return cls.preset("small", **overrides)

  @classmethod
  def base(cls, **overrides) -> "T5Config":
    """T5 v1.1 / FlanT5 base: emb 768, 12x64 heads, 12+12 layers, mlp 2048."""
    return cls.preset("base", **overrides)

  @classmethod
  def large(cls, **overrides) -> "T5Config":
    """T5 v1.1 / FlanT5 large: emb 1024, 16x64 heads, 24+24 layers, mlp 2816."""
    return cls.preset("large", **overrides)

  @classmethod
  def xl(cls, **overrides) -> "T5Config":
    """T5 v1.1 / FlanT5 XL: emb 2048, 32x64 heads, 24+24 layers, mlp 5120."""
    return cls.preset("xl", **overrides)

  @classmethod
  def xxl(cls, **overrides) -> "T5Config":
    """T5 v1.1 / FlanT5 XXL: emb 4096, 64x64 heads, 24+24 layers, mlp 10240."""
    return cls.preset("xxl", **overrides)


def get_config(name: str = "base", **overrides) -> T5Config:
  """Preset by name ('tiny', 'small', 'base', 'large', 'xl', 'xxl'); gin-configurable entry."""
  return T5Config.preset(name, **overrides)

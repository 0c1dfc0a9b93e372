"""T5X-compatible Flax T5 v1.1 (config, layers incl. LoRA dense, network, decoding, losses).

  from persoma.models.t5 import T5Config, Transformer, encoder_mask, decoding, losses
"""
from persoma.models.t5 import decoding, losses
from persoma.models.t5.config import PRESETS, T5Config, get_config
from persoma.models.t5.lora import DenseGeneral, merge_lora
from persoma.models.t5.network import Transformer, encoder_mask

__all__ = ["PRESETS", "DenseGeneral", "T5Config", "Transformer", "decoding", "encoder_mask",
           "get_config", "losses", "merge_lora"]

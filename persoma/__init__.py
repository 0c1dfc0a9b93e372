"""persoma: personalized soft prompting for T5X-style encoder-decoder language models."""

__version__ = "0.1.0"

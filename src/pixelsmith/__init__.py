"""pixelsmith: a self-hosted, OpenAI-compatible image generation API on Hugging Face diffusers."""

__version__ = "0.1.0"

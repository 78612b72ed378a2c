"""kurdish_tts: fine-tune Kurdish (Kurmanji) text-to-speech models on the Hugging Face stack."""

__version__ = "0.1.0"

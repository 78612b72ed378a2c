"""XTTS-style voice cloning: `XttsConfig`, the GPT-2-backbone `XttsForTextToSpeech`, vocoders; the loss terms are in
`losses.py`.

The names below are imported on first use, so that `import kurdish_tts` can register `XttsConfig` with `AutoConfig`
without loading the model code (see `kurdish_tts.models`). Importing the model registers it with the Auto classes.
"""

import importlib

_EXPORTS = {
    "configuration_xtts": ("MODEL_SIZES", "XttsConfig"),
    "generation": ("XttsGenerationOutput",),
    "modeling_xtts": ("XttsForTextToSpeech", "XttsOutput"),
    "vocoder": ("GriffinLimVocoder", "NeuralVocoder", "VocoderMismatchError", "load_vocoder"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = sorted(_MODULE_OF)

"""Model families: `vits` (training side of MMS/VITS) and `xtts` (XTTS-style voice cloning).

`import kurdish_tts` is enough for `transformers.AutoConfig.from_pretrained(dir)` and `AutoModel.from_pretrained(dir)`
to load a saved XTTS model. Registering eagerly would import transformers, torch and the model at `import kurdish_tts`
(seconds); instead `install_auto_registration` registers when transformers loads its Auto classes: `XttsConfig` right
after `configuration_auto`, and after `modeling_auto` a light stand-in that imports the model on first use. The model
code cannot be imported at that moment, since the Auto modules are often loaded in the middle of another transformers
import (e.g. `from transformers import GPT2Model`); importing `kurdish_tts.models.xtts.modeling_xtts` registers the
real class over the stand-in.
"""

from __future__ import annotations

import importlib.abc
import sys

_CONFIGURATION_AUTO = "transformers.models.auto.configuration_auto"
_MODELING_AUTO = "transformers.models.auto.modeling_auto"


def _register_config(configuration_auto) -> None:
    from .xtts.configuration_xtts import XttsConfig

    configuration_auto.AutoConfig.register(XttsConfig.model_type, XttsConfig, exist_ok=True)


def _register_model(modeling_auto) -> None:
    from .xtts.configuration_xtts import XttsConfig

    class XttsForTextToSpeechLoader:
        """Stands in for `XttsForTextToSpeech` in the Auto mappings until the model code is imported."""

        config_class = XttsConfig

        @classmethod
        def _model_class(cls):
            from .xtts.modeling_xtts import XttsForTextToSpeech

            return XttsForTextToSpeech

        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return cls._model_class().from_pretrained(*args, **kwargs)

        @classmethod
        def _from_config(cls, *args, **kwargs):
            return cls._model_class()._from_config(*args, **kwargs)

    for auto_class in (modeling_auto.AutoModel, modeling_auto.AutoModelForTextToSpectrogram):
        # The real class, when already imported, must not be replaced by the stand-in.
        if XttsConfig not in auto_class._model_mapping:
            auto_class.register(XttsConfig, XttsForTextToSpeechLoader)


_REGISTRATIONS = {_CONFIGURATION_AUTO: _register_config, _MODELING_AUTO: _register_model}


class _AutoRegistrationFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of transformers' two Auto modules so that registration runs right after
    each of them executes."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _REGISTRATIONS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _REGISTRATIONS[fullname](module)

        spec.loader.exec_module = exec_module
        return spec


def install_auto_registration() -> None:
    """Register the XTTS model with transformers' Auto classes now if they are loaded, else as soon as they load."""
    pending = False
    for name, register in _REGISTRATIONS.items():
        if name in sys.modules:
            register(sys.modules[name])
        else:
            pending = True
    if pending and not any(isinstance(finder, _AutoRegistrationFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AutoRegistrationFinder())

"""kurdish_tts: fine-tune Kurdish (Kurmanji) text-to-speech models on the Hugging Face stack."""

import time as _time

__version__ = "0.1.0"

# When this program started, as far as a time budget is concerned (`kurdish_tts.trainers.budget.program_start_time`).
IMPORTED_AT = _time.time()

# `AutoConfig`/`AutoModel.from_pretrained` of a saved XTTS model work after `import kurdish_tts`; registration waits
# until transformers loads its Auto classes, so this import stays light (see `kurdish_tts.models`).
from .models import install_auto_registration as _install_auto_registration  # noqa: E402

_install_auto_registration()

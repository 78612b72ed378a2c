"""kurdish_tts: fine-tune Kurdish (Kurmanji) text-to-speech models on the Hugging Face stack."""

import time as _time

__version__ = "0.1.0"

# Where `/proc` is missing, a time budget starts here (`kurdish_tts.trainers.budget.process_start_time`).
IMPORTED_AT = _time.time()

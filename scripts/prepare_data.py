"""Thin entry point; see `kurdish_tts.cli.prepare_data` (same as `kurdish-tts prepare`)."""

from kurdish_tts.cli.prepare_data import main

if __name__ == "__main__":
    raise SystemExit(main())

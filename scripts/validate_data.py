"""Thin entry point; see `kurdish_tts.cli.validate_data` (same as `kurdish-tts validate`)."""

from kurdish_tts.cli.validate_data import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Thin entry point; see `kurdish_tts.cli.evaluate` (same as `kurdish-tts evaluate`)."""

from kurdish_tts.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())

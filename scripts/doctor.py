"""Thin entry point; see `kurdish_tts.cli.doctor` (same as `kurdish-tts doctor`)."""

from kurdish_tts.cli.doctor import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Thin entry point; see `kurdish_tts.cli.push_to_hub` (same as `kurdish-tts push`)."""

from kurdish_tts.cli.push_to_hub import main

if __name__ == "__main__":
    raise SystemExit(main())

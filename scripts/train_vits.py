"""Thin entry point; see `kurdish_tts.cli.train_vits` (same as `kurdish-tts train`)."""

from kurdish_tts.cli.train_vits import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Thin entry point; see `kurdish_tts.cli.train_xtts` (same as `kurdish-tts train-xtts`)."""

from kurdish_tts.cli.train_xtts import main

if __name__ == "__main__":
    raise SystemExit(main())

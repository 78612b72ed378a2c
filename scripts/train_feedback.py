"""Thin entry point; see `kurdish_tts.cli.train_feedback`."""

from kurdish_tts.cli.train_feedback import main

if __name__ == "__main__":
    raise SystemExit(main())

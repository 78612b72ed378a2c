"""Thin entry point; see `kurdish_tts.cli.convert_discriminator` (same as `kurdish-tts convert-discriminator`)."""

from kurdish_tts.cli.convert_discriminator import main

if __name__ == "__main__":
    raise SystemExit(main())

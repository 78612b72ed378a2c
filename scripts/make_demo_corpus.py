"""Regenerate the bundled Kurmanji demo corpus with espeak-ng: `python scripts/make_demo_corpus.py`.

A bigger corpus elsewhere: `python scripts/make_demo_corpus.py --output_dir outputs/kmr_espeak_large --num_clips 2000`.
"""

from kurdish_tts.cli.make_demo_corpus import main

raise SystemExit(main())

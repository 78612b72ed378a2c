"""The `kurdish-tts` command: one entry point whose subcommands are the package's scripts.

`kurdish-tts prepare ...` runs exactly what `python scripts/prepare_data.py ...` runs: every script in `scripts/`
is a shim over a module here, so the console command and the scripts cannot drift apart.
"""

import importlib
import sys

from .entry_point import CommandParser, entry_point

# subcommand -> module under kurdish_tts.cli; each module has `main(argv) -> int`.
COMMANDS = {
    "prepare": "prepare_data",
    "validate": "validate_data",
    "make-demo-corpus": "make_demo_corpus",
    "convert-discriminator": "convert_discriminator",
    "train": "train_vits",
    "train-xtts": "train_xtts",
    "clone": "clone",
    "evaluate": "evaluate",
    "push": "push_to_hub",
    "feedback": "train_feedback",
    "doctor": "doctor",
}


def parse_arguments(parser: CommandParser, argv: list[str] | None):
    """Parse dataclasses from a single YAML recipe (`cmd recipe.yaml`) or from command-line flags."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_recipe(argv[0])
    return parser.parse_args_into_dataclasses(args=argv)


@entry_point
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(
            "usage: kurdish-tts {"
            + ",".join(COMMANDS)
            + "} [options]\n\nRun `kurdish-tts COMMAND --help` for its options."
        )
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"kurdish-tts: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"kurdish_tts.cli.{COMMANDS[command]}")
    # The name argparse shows in messages (`see \`kurdish-tts train --help\``) is taken from sys.argv[0].
    sys.argv[0] = f"kurdish-tts {command}"
    if command in {"train", "train-xtts", "feedback"}:
        from ..trainers.budget import program_start_time

        # The time budget covers this program from its start, its imports included.
        return module.main(rest, started=program_start_time())
    return module.main(rest)

"""Turn listeners' corrections into a better model, safely: the feedback store and its training loop.

    python scripts/train_feedback.py add --audio fix.wav --text "Roj baş." [--speaker S] [--note N]
    python scripts/train_feedback.py add-dir corrections/           # x.wav + x.txt pairs
    python scripts/train_feedback.py list | stats | remove ID [ID ...]
    python scripts/train_feedback.py train [--replay_ratio 4 --regression_tolerance 0.02 --target_minutes 20]
    python scripts/train_feedback.py rollback [--to v0001]
    python scripts/train_feedback.py                               # same as `train`

Every command takes --store (default: feedback). Exit status: 0 done (for train: a new model was promoted), 1 failed
or not promoted (the message or the report says why), 2 bad arguments. `train --help` lists the training options.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

from ..errors import UsageError
from ..feedback import (
    FEEDBACK_TRAINING_DEFAULTS,
    FeedbackArguments,
    FeedbackError,
    FeedbackInput,
    FeedbackStore,
    FeedbackValidationConfig,
    ModelVersions,
    find_pairs,
)
from ..text import KURMANJI_TOKENIZER_NAME, load_tokenizer
from .entry_point import CommandParser, OneLineArgumentParser, entry_point


def make_store_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="validate one recording and its text, and add it")
    add.add_argument("--audio", required=True, help="The recording (any format soundfile reads).")
    add.add_argument("--text", required=True, help="The sentence it says.")
    add_dir = commands.add_parser("add-dir", help="add every x.wav + x.txt pair of a folder")
    add_dir.add_argument("directory")
    for command in (add, add_dir):
        command.add_argument("--speaker", help="Speaker label (for multi-speaker models; default speaker_0).")
        command.add_argument("--note", help="A note kept with the item (what was wrong).")
        command.add_argument(
            "--tokenizer", help="Vocabulary that decides what is speakable (default: the store's current model)."
        )
        for option in dataclasses.fields(FeedbackValidationConfig):
            command.add_argument(
                f"--{option.name}", type=type(option.default), default=option.default, help=option.metadata["help"]
            )
    for name, help_text in (("list", "list the items"), ("stats", "counts, durations, speakers and model versions")):
        commands.add_parser(name, help=help_text).add_argument("--json", action="store_true", help="Print JSON.")
    commands.add_parser("remove", help="remove items by id").add_argument("ids", nargs="+", metavar="ID")
    rollback = commands.add_parser("rollback", help="make the previous model version current again")
    rollback.add_argument("--to", help="A version to make current (default: the one the current version replaced).")
    # Listed for --help only: `train` is parsed by `parse_train`.
    commands.add_parser("train", help="fine-tune on the items and promote only if nothing got worse", add_help=False)
    for command in commands.choices.values():
        command.add_argument("--store", default="feedback", help="The feedback store's folder (default: feedback).")
    return parser


def make_train_parser():
    # Imported here: the training stack is not needed by the store's commands, which should start fast.
    from ..data.arguments import DataArguments
    from ..trainers.vits_arguments import VitsTrainingArguments

    return CommandParser(
        (FeedbackArguments, DataArguments, VitsTrainingArguments), prog=f"{Path(sys.argv[0]).name} train"
    )


def parse_train(argv: list[str]):
    """The three argument dataclasses of `train`, the store and the lineage.

    Defaults, weakest first: the feedback training defaults, the original run's recorded data arguments, the recipe,
    then the flags.
    """
    from ..data.arguments import DataArguments
    from ..recipes import RecipeError, load_recipe
    from .training_command import _recipe_in

    parser = make_train_parser()
    parser.set_defaults(**FEEDBACK_TRAINING_DEFAULTS)
    recipe = _recipe_in(argv)
    recipe_values = {}
    if recipe is not None:
        recipe_values = load_recipe(recipe)
        unknown = sorted(set(recipe_values) - {action.dest for action in parser._actions})
        if unknown:
            raise RecipeError(f"recipe {recipe!r} sets unknown arguments: {', '.join(unknown)}")
        parser.set_defaults(**recipe_values)
    feedback_args, _, _ = parser.parse_args_into_dataclasses(args=argv)
    # Heavy (the training stack), so only after the flags were checked.
    from ..feedback.lineage import resolve_lineage
    from ..feedback.train import RUNS_DIR

    store = FeedbackStore(feedback_args.store)
    if not store.items():
        raise FeedbackError(f"{store.root} holds no feedback items; add corrections with `add` or `add-dir` first")
    lineage = resolve_lineage(store, feedback_args)
    if lineage.data_arguments:
        known = {field.name for field in dataclasses.fields(DataArguments)}
        parser.set_defaults(**{key: value for key, value in lineage.data_arguments.items() if key in known})
    elif not any(arg == "--data" or arg.startswith("--data=") for arg in argv) and "data" not in recipe_values:
        raise UsageError(
            f"the run {lineage.run_dir} does not record the data it was trained on (it predates that record): pass "
            "--data and the preprocessing options that run used"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output_dir = store.root / RUNS_DIR / stamp
    suffix = 1
    while output_dir.exists():
        suffix += 1
        output_dir = store.root / RUNS_DIR / f"{stamp}-{suffix}"
    parser.set_defaults(**{"output_dir": str(output_dir), **recipe_values})
    feedback_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    if training_args.world_size > 1:
        # Promotion and the store's versions are written by one process; a feedback fine-tune is short anyway.
        raise UsageError("train runs as one process: start it with `python scripts/train_feedback.py train`")
    return feedback_args, data_args, training_args, store, lineage


def train(argv: list[str], started: float | None = None) -> int:
    started = time.time() if started is None else started
    feedback_args, data_args, training_args, store, lineage = parse_train(argv)
    from ..feedback.train import FeedbackTraining

    run = FeedbackTraining(store, lineage, feedback_args, data_args, training_args, started=started)
    return run.execute()


def add(args) -> int:
    store = FeedbackStore(args.store)
    current = ModelVersions(store).current_path()
    try:
        tokenizer = load_tokenizer(
            args.tokenizer or (str(current) if current is not None else KURMANJI_TOKENIZER_NAME)
        )
    except OSError as error:
        raise UsageError(str(error)) from None
    if args.command == "add-dir" and not Path(args.directory).is_dir():
        raise UsageError(f"{args.directory} is not a folder; give the folder of x.wav + x.txt pairs")
    config = FeedbackValidationConfig(
        **{option.name: getattr(args, option.name) for option in dataclasses.fields(FeedbackValidationConfig)}
    )
    if args.command == "add":
        inputs, unpaired = [FeedbackInput(args.audio, args.text, args.speaker, args.note)], []
    else:
        inputs, unpaired = find_pairs(args.directory, speaker=args.speaker, note=args.note)
    result = store.add_many(inputs, tokenizer=tokenizer, config=config)
    rejected = unpaired + result.rejected
    for row in result.added:
        print(f"added {row['id']}  {row['duration']:.1f} s  {row['text']}")
    for source, stored in result.duplicates:
        print(f"skipped {source}: already stored as {stored} (same recording, same text)")
    for note in result.notes:
        print(f"note: {note}")
    for rejection in rejected:
        print(f"rejected {rejection}", file=sys.stderr)
    print(
        f"{len(result.added)} added, {len(result.duplicates)} already stored, {len(rejected)} rejected; "
        f"the store {store.root} holds {len(store.items())} items"
    )
    return 1 if rejected else 0


def list_items(args) -> int:
    store = FeedbackStore(args.store)
    rows = store.items()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"{store.root}: no items (add some with `add` or `add-dir`)")
        return 0
    width = max(len(row["id"]) for row in rows)
    print(f"{'id':<{width}}  {'seconds':>7}  {'speaker':<12}  {'added':<10}  text")
    for row in rows:
        text = row["text"] if len(row["text"]) <= 70 else row["text"][:69] + "…"
        print(f"{row['id']:<{width}}  {row['duration']:>7.2f}  {row['speaker']:<12}  {row['added'][:10]}  {text}")
    print(f"{len(rows)} items, {sum(row['duration'] for row in rows) / 60:.1f} min")
    return 0


def stats(args) -> int:
    store = FeedbackStore(args.store)
    versions = ModelVersions(store)
    summary = store.stats()
    current = versions.current()
    trained = set(versions.record(current).get("feedback_ids") or []) if current else set()
    history = versions.history()
    summary["models"] = {
        "current": current,
        "versions": versions.names(),
        "items_not_in_current_model": sum(1 for row in store.items() if row["id"] not in trained),
        "last_event": history[-1] if history else None,
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return 0
    lines = [f"store   : {summary['store']}", f"items   : {summary['items']} ({summary['seconds'] / 60:.1f} min)"]
    if summary["duration"]:
        lines.append("duration: {min:.2f} s min, {mean:.2f} s mean, {max:.2f} s max".format(**summary["duration"]))
    for speaker, entry in summary["speakers"].items():
        lines.append(f"  {speaker}: {entry['items']} items, {entry['seconds'] / 60:.1f} min")
    models = summary["models"]
    lines.append(
        f"models  : current {models['current'] or 'none yet'}; versions {', '.join(models['versions']) or '-'}"
    )
    lines.append(f"          {models['items_not_in_current_model']} items not yet in the current model")
    if models["last_event"]:
        lines.append(f"last    : {json.dumps(models['last_event'], ensure_ascii=False)}")
    print("\n".join(lines))
    return 0


def remove(args) -> int:
    for row in FeedbackStore(args.store).remove(args.ids):
        print(f"removed {row['id']}  {row['text']}")
    return 0


def rollback(args) -> int:
    versions = ModelVersions(FeedbackStore(args.store))
    previous, current = versions.rollback(args.to)
    print(f"current model: {current} (was {previous}): {versions.path(current)}")
    return 0


HANDLERS = {"add": add, "add-dir": add, "list": list_items, "stats": stats, "remove": remove, "rollback": rollback}


@entry_point
def main(argv: list[str] | None = None, *, started: float | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if argv and argv[0] in {"-h", "--help"}:
        make_store_parser().print_help()
        return 0
    # With no command (or only options) the script does what its name says.
    if not argv or argv[0].startswith("-") or argv[0] == "train":
        if started is None and from_command_line:
            from ..trainers.budget import program_start_time

            # As for train_vits.py: --target_minutes covers this program from its start, its imports included.
            started = program_start_time()
        return train(argv[1:] if argv and argv[0] == "train" else argv, started)
    args = make_store_parser().parse_args(argv)
    return HANDLERS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())

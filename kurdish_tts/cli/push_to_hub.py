"""Publish a trained model to the Hugging Face Hub with a generated model card.

    python scripts/push_to_hub.py runs/rtx2070_finetune --repo_id me/mms-tts-kmr-dengbej --dry_run
    python scripts/push_to_hub.py runs/rtx2070_finetune --repo_id me/mms-tts-kmr-dengbej --private
    kurdish-tts push runs/demo/best_model --repo_id me/kmr-demo --include_discriminator

MODEL_DIR is a training run's output folder (its `best_model/` is published) or a model folder. The upload is the
model (weights, config, tokenizer; the discriminator with `--include_discriminator`), a `README.md` model card written
from the run's files, the audio sample and the training curves. `--dry_run` writes exactly that folder (default
`<run>/hub_upload`) and uploads nothing. The token is huggingface_hub's (`hf auth login`, or `HF_TOKEN`); it is never
printed.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

from ..errors import UsageError
from ..hub import RunFilesError, push_to_hub
from .entry_point import CommandParser, check_output_folder, entry_point


@dataclass
class PushArguments:
    r"""
    Where to publish, and what.

    repo_id (`str`):
        `namespace/name` (or a bare name, for your own namespace).
    private (`bool`, *optional*, defaults to `False`):
        Create the repository as private. Without it, a new repository gets the Hub's default visibility (public, or
        your organization's default); an existing repository keeps its visibility either way.
    """

    repo_id: str = field(metadata={"help": "Hub repository: namespace/name (or a bare name for your namespace)."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    include_discriminator: bool = field(
        default=False, metadata={"help": "Also publish discriminator.safetensors (for further fine-tuning)."}
    )
    dry_run: bool = field(default=False, metadata={"help": "Write the upload folder and upload nothing."})
    upload_dir: str | None = field(
        default=None, metadata={"help": "Where to write the upload folder (default with --dry_run: <run>/hub_upload)."}
    )
    license: str | None = field(
        default=None, metadata={"help": "Licence id for the card, overriding the one inherited from the base model."}
    )
    datasets: str | None = field(
        default=None, metadata={"help": "Comma-separated Hub dataset ids for the card (default: the training data)."}
    )
    evaluation: str | None = field(
        default=None, metadata={"help": "evaluation.json of scripts/evaluate.py (default: <run>/evaluation/)."}
    )
    commit_message: str | None = field(default=None, metadata={"help": "Commit message."})
    max_retries: int = field(default=3, metadata={"help": "Retries of a Hub call after a transient failure."})
    retry_wait: float = field(default=2.0, metadata={"help": "Seconds before the first retry (doubled after)."})


def make_parser() -> CommandParser:
    return CommandParser(PushArguments, description=__doc__.splitlines()[0])


@entry_point
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    # The package's progress at INFO; the HTTP client's per-request INFO lines would drown it.
    logging.getLogger("kurdish_tts").setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    args, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if any(arg.startswith("-") for arg in rest):
        raise UsageError(parser.unknown_arguments_message(rest))
    if len(rest) != 1:
        raise UsageError(
            f"expected one MODEL_DIR, got {len(rest)}; usage: push_to_hub.py MODEL_DIR --repo_id namespace/name "
            "[--dry_run]"
        )
    check_output_folder(args.upload_dir, "--upload_dir")
    try:
        result = push_to_hub(
            rest[0],
            args.repo_id,
            private=True if args.private else None,
            include_discriminator=args.include_discriminator,
            dry_run=args.dry_run,
            upload_dir=args.upload_dir,
            license=args.license,
            datasets=[name.strip() for name in args.datasets.split(",") if name.strip()] if args.datasets else None,
            evaluation=args.evaluation,
            commit_message=args.commit_message,
            max_retries=args.max_retries,
            retry_wait=args.retry_wait,
        )
    except RunFilesError as error:
        raise UsageError(str(error)) from None
    if result.dry_run:
        print(f"Dry run: nothing was uploaded. The upload folder for {result.repo_id} is {result.folder}:")
        for name in result.files:
            print(f"  {name:<28} {(result.folder / name).stat().st_size:>12,} bytes")
        print(f"Read {result.folder / 'README.md'}, then run again without --dry_run.")
    else:
        print(f"Published {len(result.files)} files to {result.url} (commit {result.commit}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A training run end to end, below the command line: its arguments (`arguments`), the steps every model family shares
(`TrainingRun`) and what VITS and XTTS add (`VitsRun`, `XttsRun`). `kurdish_tts.cli` parses and calls these;
`kurdish_tts.feedback` and `kurdish_tts.doctor` build on them.

The names below are imported on first use: the runs load the whole training stack, and the commands parse their
arguments (and answer `--help`) before that.
"""

import importlib

_EXPORTS = {
    "arguments": ("RunArguments", "VitsModelArguments", "XttsModelArguments"),
    "training_run": (
        "SPLIT_NAME",
        "SUMMARY_NAME",
        "DataUnusable",
        "TrainingRun",
        "check_launch",
        "leave_process_group",
        "offline_message",
    ),
    "vits_run": ("VitsRun",),
    "xtts_run": ("XttsRun", "generation_limit"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = sorted(_MODULE_OF)

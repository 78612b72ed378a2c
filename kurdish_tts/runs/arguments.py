"""The arguments of a training run: which model it starts from (`VitsModelArguments`, `XttsModelArguments`) and the run
as a whole (`RunArguments`: recipe, time budget, held-out data, recovery, the sample at the end)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_BASE_MODEL = "facebook/mms-tts-kmr-script_latin"
SAMPLE_SENTENCE = "Roj baş, ez bi kurmancî diaxivim."


@dataclass
class VitsModelArguments:
    r"""
    Which model to start from, and which voices to train.

    model_name_or_path (`str`, *optional*, defaults to `"facebook/mms-tts-kmr-script_latin"`):
        A VitsModel on the Hub or in a local folder (e.g. an earlier run's `best_model`).
    discriminator (`str`, *optional*, defaults to `"auto"`):
        Where the discriminator starts from (`kurdish_tts.models.vits.discriminator_source`). `auto`: the model
        folder's own `discriminator.safetensors`; for an MMS model id (`facebook/mms-tts-<language>`), MMS's pretrained
        discriminator, downloaded from `facebook/mms-tts` (`full_models/<language>/D_100000.pth`, CC BY-NC 4.0); else a
        fresh one. `none`: a fresh one. A path: a folder holding `discriminator.safetensors`, or an original VITS
        checkpoint (`D_*.pth`). `hf://OWNER/REPO/PATH`: such a file on the Hub.
    model_size (`str`, *optional*):
        `tiny`, `small` or `mms`: start from random weights of that size instead (offline; with `--tokenizer kurmanji`).
    duration_predictor (`str`, *optional*):
        With `model_size`: `stochastic` (VITS's and MMS's, the default) or `deterministic` (a convolutional regressor
        of log-durations, trained with a squared error). From random init the stochastic one can learn to predict
        one frame per token (the 20-minute H100 run in `benchmarks/README.md`); the deterministic one learns the
        alignment's durations directly. A base model keeps its own.
    speaker (`str`, *optional*):
        Train one voice: a speaker id of the data, or `most_hours` for the speaker with the most clean hours.
    multi_speaker (`bool`, *optional*, defaults to `False`):
        Train every speaker with at least `min_speaker_clips` clips, each with its own speaker embedding (added to a
        single-speaker base model with zero-initialized conditioning, so training starts from the base voice).
    """

    model_name_or_path: str = field(
        default=DEFAULT_BASE_MODEL, metadata={"help": "Base model: a Hub id or a local VitsModel folder."}
    )
    discriminator: str = field(
        default="auto",
        metadata={
            "help": "Where the discriminator starts from: auto (the model folder's own, or MMS's pretrained one for "
            "facebook/mms-tts-* ids, else fresh), none (fresh), a folder with discriminator.safetensors or an "
            "original D_*.pth, or hf://OWNER/REPO/PATH."
        },
    )
    model_size: str | None = field(
        default=None,
        metadata={"help": "Random init of this size instead of a base model.", "choices": ["tiny", "small", "mms"]},
    )
    duration_predictor: str | None = field(
        default=None,
        metadata={
            "help": "With --model_size: the duration predictor, stochastic (default) or deterministic.",
            "choices": ["stochastic", "deterministic"],
        },
    )
    speaker: str | None = field(default=None, metadata={"help": "Train one voice: a speaker id, or `most_hours`."})
    multi_speaker: bool = field(default=False, metadata={"help": "Train all speakers with speaker embeddings."})
    min_speaker_clips: int = field(
        default=20, metadata={"help": "With --multi_speaker: drop speakers with fewer clips than this."}
    )
    speaker_embedding_size: int | None = field(
        default=None, metadata={"help": "Size of added speaker embeddings (default: 256, 8 for the tiny model)."}
    )


@dataclass
class RunArguments:
    r"""
    The run as a whole: recipe, time budget, held-out data, recovery, the sample at the end.
    """

    recipe: str | None = field(
        default=None,
        metadata={"help": "A recipe name (demo, rtx2070_finetune, h100_finetune) or YAML path; flags override it."},
    )
    target_hours: float | None = field(
        default=None,
        metadata={"help": "Wall-clock budget of the whole job; sets max_steps by timing real steps first."},
    )
    eval_samples: int = field(default=100, metadata={"help": "Clips held out for evaluation (at most 10 %%)."})
    budget_probe_steps: int = field(default=20, metadata={"help": "Steps timed to plan the budget."})
    budget_warmup_steps: int = field(default=5, metadata={"help": "Steps run before timing starts."})
    budget_min_steps: int = field(
        default=0,
        metadata={
            "help": "With --target_hours: train at least this many steps. On a machine too slow (or busy) for them "
            "in the budget, the run trains them anyway and ends late, with a warning, instead of refusing (the demo "
            "recipes set it). 0 refuses a budget that cannot hold a single step."
        },
    )
    nan_max_recoveries: int = field(default=3, metadata={"help": "Give up after this many NaN recoveries."})
    nan_lr_factor: float = field(default=0.5, metadata={"help": "Multiply the learning rate by this on recovery."})
    sample_text: str = field(default=SAMPLE_SENTENCE, metadata={"help": "Sentence synthesized at the end."})
    synthesis_metrics: str = field(
        default="mcd,duration,rtf,health",
        metadata={
            "help": "Metrics of synthesized held-out clips added to every evaluation (eval_mcd, eval_duration_error, "
            "eval_clipped, ...): comma-separated mcd, duration, f0, rtf, stop_failure, health, or '' for none. "
            "Select the best model by one with e.g. --metric_for_best_model mcd; with health, a model whose "
            "synthesized audio fails a waveform check is never kept as the best model."
        },
    )
    synthesis_metrics_samples: int = field(default=8, metadata={"help": "Held-out clips synthesized per evaluation."})
    synthesis_metrics_every: int = field(
        default=1, metadata={"help": "Compute the synthesis metrics at every n-th evaluation (and the last)."}
    )
    best_model_health_check: bool = field(
        default=True,
        metadata={
            "help": "Never keep an evaluation whose audio fails a waveform-health check (clipping, DC offset, a tone "
            "above 7.5 kHz, a level far from the recordings') as the best model. Turn off only to debug."
        },
    )
    hub_include_discriminator: bool = field(
        default=False,
        metadata={"help": "With --push_to_hub: publish the discriminator too (for further fine-tuning)."},
    )


# The sizes `XttsConfig.for_size` knows, offered by `--model_size`.
XTTS_MODEL_SIZES = ("tiny", "small", "base")


@dataclass
class XttsModelArguments:
    r"""
    Which model to train.

    model_size (`str`, *optional*):
        `tiny` (tests, CPU demo), `small` (~8 GB GPUs) or `base` (GPT-2-base-like): start from random weights of this
        size, with the built-in Kurmanji tokenizer.
    model_name_or_path (`str`, *optional*):
        Continue from a saved model folder instead, e.g. an earlier run's `best_model` (its tokenizer is next to it).
    mel_settings (`str`, *optional*, defaults to `"size"`):
        With `--model_size`: `size` keeps the size's own mel settings (the tiny size's are a 32-point FFT with hop
        16, made for unit tests), `mms` uses MMS's (80 bands, hop 256, 16 kHz) whatever the size: 16 times fewer
        frames per second than the tiny settings, and a mel that Griffin-Lim turns into audible speech.
    """

    model_size: str | None = field(
        default=None, metadata={"help": "Random init of this size.", "choices": list(XTTS_MODEL_SIZES)}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved XTTS model folder to continue from (e.g. runs/<run>/best_model)."}
    )
    mel_settings: str = field(
        default="size",
        metadata={"help": "With --model_size: the size's own mel settings, or MMS's.", "choices": ["size", "mms"]},
    )

"""`SynthesisMetricsCallback`: MCD, duration, F0, RTF (and CER) of synthesized held-out clips in the Trainer's
evaluation, so that best-model selection can use them."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from accelerate.utils import extract_model_from_parallel
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..evaluation.catalog import DEFAULT_TRIM_TOP_DB, LOWER_IS_BETTER, metric_keys, parse_metric_groups
from ..evaluation.evaluator import evaluate_synthesizer
from ..evaluation.synthesis import EvaluationItem, Synthesizer, VitsSynthesizer
from .best_model import BestModelCallback, _from_main_process, _with_eval_prefix

logger = logging.getLogger(__name__)

# Cheap enough for every evaluation of a long run: F0 (pYIN, about 0.3 s of CPU per second of audio) is opt-in.
DEFAULT_TRAINING_METRICS = ("mcd", "duration", "rtf")


def vits_synthesizer(model, tokenizer, speaker_to_id: dict[str, int] | None, seed: int) -> Synthesizer:
    """The `Synthesizer` of a `VitsForTraining` (its stock `.vits` generator) or of a stock `VitsModel`."""
    from transformers import VitsModel

    from ..models.vits import VitsForTraining

    if isinstance(model, VitsForTraining):
        model = model.vits
    if not isinstance(model, VitsModel):
        raise TypeError(
            f"SynthesisMetricsCallback synthesizes with VITS models by default, got {type(model).__name__}; pass "
            "make_synthesizer= a function (model, tokenizer, speaker_to_id, seed) -> Synthesizer for this model"
        )
    return VitsSynthesizer(model, tokenizer, speaker_to_id=speaker_to_id, seed=seed, name="training model")


class SynthesisMetricsCallback(TrainerCallback):
    """Score synthesized held-out clips at evaluation time and report the metrics with the evaluation's own.

    At an evaluation (every `every_n_evaluations`-th, and always the first one and the first one after training
    ended), on the main process, the model synthesizes the texts of the first `num_samples` evaluation clips and
    `kurdish_tts.evaluation.evaluate_synthesizer` scores them against the recordings: the same computation as
    `scripts/evaluate.py`. The results are added to the evaluation's metrics as `eval_<key>` (`eval_mcd`,
    `eval_duration_ratio`, `eval_duration_error`, `eval_f0_rmse_hz`, `eval_f0_rmse_cents`, `eval_rtf`,
    `eval_stop_failure_rate`, `eval_cer`, following `metrics`), so that:

    - `trainer.evaluate()` returns them, and `metric_for_best_model="mcd"` works for the Trainer's own best-metric
      tracking and for `BestModelCallback`;
    - they are logged (console, TensorBoard, `log_history`) as a log entry of their own at the evaluation's step.

    Adding keys to the `metrics` dict is this callback's one departure from observe-only: `Trainer.evaluate` passes
    that very dict to every `on_evaluate` and then returns it, and the Trainer offers no earlier hook. The callback
    must therefore run before the callbacks that read the metric: `attach(trainer)` puts it in front of
    `BestModelCallback` (attach that one first), and `on_train_begin` raises if a `BestModelCallback` runs earlier.

    Between two computations (with `every_n_evaluations > 1`), an evaluation carries the last computed values again.
    They are not logged a second time, and since a tie never replaces the best model (neither for the Trainer nor
    for `BestModelCallback`), an evaluation without fresh values can never become the best by them.

    Which evaluation. Only the evaluation of the training's evaluation set (metric prefix `eval`) gets the metrics:
    the clips are that set's, so `trainer.evaluate(test_set, metric_key_prefix="test")` is left alone.

    Under `accelerate launch` the main process synthesizes and scores, and broadcasts the values, so that every
    process reports the same metrics (best-model selection relies on that). A failure (an exception while
    synthesizing or scoring) is logged with its traceback and reported as NaN, which is never the best: a broken
    metric does not stop a long run.

    Time. Synthesis and scoring happen inside the evaluation, so `TimeBudgetCallback` counts them as evaluation time
    when it re-plans; the budget probe's single evaluation does not run callbacks, so the first plan leaves them out.

    Example:

    ```python
    >>> trainer = VitsTrainer(model, args, train_dataset=train, eval_dataset=dev, processing_class=tokenizer)
    >>> BestModelCallback(metric_name="mcd", greater_is_better=False).attach(trainer)
    >>> SynthesisMetricsCallback(dev, metrics="mcd,duration").attach(trainer)
    >>> trainer.train()
    ```

    Args:
        eval_dataset (`datasets.Dataset` or `Sequence[EvaluationItem]`):
            Held-out clips: a prepared cache (`id`, `text`, 16-bit `waveform` at the model's rate, `speaker`), or
            `EvaluationItem`s. The first `num_samples` are used.
        metrics (`str` or `Sequence[str]`, *optional*, defaults to `("mcd", "duration", "rtf")`):
            Metric groups: `mcd`, `duration`, `f0`, `rtf`, `stop_failure`, `cer` (needs `transcriber`).
        num_samples (`int`, *optional*, defaults to `8`):
            Clips synthesized per evaluation.
        every_n_evaluations (`int`, *optional*, defaults to `1`):
            Compute at every n-th evaluation.
        speaker_to_id (`dict[str, int]`, *optional*):
            For a multi-speaker model: each clip is synthesized with its own speaker's embedding.
        transcriber (`kurdish_tts.evaluation.asr.CtcTranscriber`, *optional*):
            ASR model for `cer`.
        trim_top_db (`float`, *optional*, defaults to `40.0`):
            Edge silence trimmed before scoring.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the synthesis noise (forked: the training's random stream is untouched).
        make_synthesizer (`Callable`, *optional*):
            `(model, tokenizer, speaker_to_id, seed) -> Synthesizer`, for model families other than VITS; defaults
            to `vits_synthesizer`.

    Attributes:
        last_metrics (`dict[str, float]`): The latest computed values, with the `eval_` prefix.
        last_step (`int` or `None`): The global step they were computed at.
        failures (`int`): Evaluations whose synthesis metrics raised.
    """

    def __init__(
        self,
        eval_dataset,
        metrics: str | Sequence[str] = DEFAULT_TRAINING_METRICS,
        num_samples: int = 8,
        every_n_evaluations: int = 1,
        speaker_to_id: dict[str, int] | None = None,
        transcriber=None,
        trim_top_db: float | None = DEFAULT_TRIM_TOP_DB,
        seed: int = 0,
        make_synthesizer: Callable[..., Synthesizer] | None = None,
    ):
        self.groups = parse_metric_groups(metrics)
        if not self.groups:
            raise ValueError("metrics must name at least one metric group")
        if "cer" in self.groups and transcriber is None:
            raise ValueError("the cer metric needs an ASR model: pass transcriber=CtcTranscriber.from_pretrained(...)")
        if num_samples < 1 or every_n_evaluations < 1:
            raise ValueError(
                f"num_samples and every_n_evaluations must be at least 1, got {num_samples} and {every_n_evaluations}"
            )
        if eval_dataset is None or len(eval_dataset) == 0:
            raise ValueError("SynthesisMetricsCallback needs held-out clips (an evaluation dataset)")
        self.eval_dataset = eval_dataset
        self.num_samples = num_samples
        self.every_n_evaluations = every_n_evaluations
        self.speaker_to_id = speaker_to_id
        self.transcriber = transcriber
        self.trim_top_db = trim_top_db
        self.seed = seed
        self.make_synthesizer = make_synthesizer or vits_synthesizer
        self.keys = tuple(f"eval_{key}" for key in metric_keys(self.groups))
        self.last_metrics: dict[str, float] = {}
        self.last_step: int | None = None
        self.failures = 0
        self._evaluations = 0
        self._training_ended = False
        self._items: list[EvaluationItem] | None = None
        self._trainer: Trainer | None = None

    def attach(self, trainer: Trainer) -> SynthesisMetricsCallback:
        """Add this callback to `trainer` in front of its `BestModelCallback` (or first, without one), so that the
        callbacks reading the evaluation's metrics see the added keys; its metrics are then logged through
        `trainer.log`. Attach `BestModelCallback` first.

        Returns:
            `SynthesisMetricsCallback`: this callback.
        """
        trainer.pop_callback(self)
        callbacks = trainer.callback_handler.callbacks
        best = [index for index, callback in enumerate(callbacks) if isinstance(callback, BestModelCallback)]
        callbacks.insert(best[0] if best else 0, self)
        self._trainer = trainer
        return self

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._training_ended = False
        if self._trainer is not None:
            callbacks = self._trainer.callback_handler.callbacks
            mine = callbacks.index(self)
            if any(isinstance(callback, BestModelCallback) for callback in callbacks[:mine]):
                raise ValueError(
                    "a BestModelCallback runs before SynthesisMetricsCallback and would not see its metrics: attach "
                    "SynthesisMetricsCallback after BestModelCallback.attach(trainer)"
                )
        selected = args.metric_for_best_model
        if selected is not None and _with_eval_prefix(selected) in self.keys and state.is_world_process_zero:
            key = _with_eval_prefix(selected).removeprefix("eval_")
            if key not in LOWER_IS_BETTER:
                logger.warning(
                    f"SynthesisMetricsCallback: metric_for_best_model={selected!r} has no better direction (a "
                    "duration ratio is best at 1); select by duration_error instead"
                )
            elif args.greater_is_better:
                logger.warning(
                    f"SynthesisMetricsCallback: metric_for_best_model={selected!r} is lower-is-better, but "
                    "greater_is_better is True (TrainingArguments sets it for every metric not ending in 'loss'); "
                    "pass --greater_is_better false"
                )

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # The final `trainer.evaluate()` after training must describe the final model, not carry older values.
        self._training_ended = True

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        model=None,
        processing_class=None,
        **kwargs,
    ):
        if metrics is None or not _is_training_evaluation(metrics):
            return
        step = state.global_step
        # A second evaluation of the same weights (the final `evaluate()` right after an evaluation at the last step).
        due = step != self.last_step and (
            self._evaluations % self.every_n_evaluations == 0 or self._training_ended or self.last_step is None
        )
        if step != self.last_step:
            self._evaluations += 1
        if due:
            values = self._compute(model, processing_class) if args.process_index == 0 else {}
            shared = _from_main_process([values.get(key, math.nan) for key in self.keys], args.device)
            self.last_metrics = dict(zip(self.keys, shared))
            self.last_step = step
            self._training_ended = False
            if self._trainer is not None:
                self._trainer.log(dict(self.last_metrics))
        metrics.update(self.last_metrics)

    def time_evaluation(self, args: TrainingArguments, model, tokenizer) -> float:
        """Seconds one computation of the metrics takes (the main process's, on every process), for a time budget.

        The budget probe's evaluation runs without callbacks, so a planner adds this to the evaluation's cost. Every
        process must call it (one broadcast); it changes neither the model nor the random state.
        """
        began = time.perf_counter()
        if args.process_index == 0:
            self._compute(model, tokenizer)
        return _from_main_process([time.perf_counter() - began], args.device)[0]

    def _compute(self, model, tokenizer) -> dict[str, float]:
        try:
            model = extract_model_from_parallel(model, keep_torch_compile=False)
            synthesizer = self.make_synthesizer(model, tokenizer, self.speaker_to_id, self.seed)
            evaluation = evaluate_synthesizer(
                synthesizer,
                self._held_out(synthesizer),
                self.groups,
                transcriber=self.transcriber,
                trim_top_db=self.trim_top_db,
            )
        except Exception:
            self.failures += 1
            logger.warning(
                "SynthesisMetricsCallback: synthesizing or scoring the held-out clips failed (%d failure(s) so far); "
                "the metrics are NaN for this evaluation and training goes on.",
                self.failures,
                exc_info=True,
            )
            return {}
        return {f"eval_{key}": value for key, value in evaluation.metrics.items()}

    def _held_out(self, synthesizer) -> list[EvaluationItem]:
        if self._items is None:
            if isinstance(self.eval_dataset[0], EvaluationItem):
                self._items = list(self.eval_dataset[: self.num_samples])
            else:
                rows = self.eval_dataset.select(range(min(self.num_samples, len(self.eval_dataset))))
                # The cache holds audio at the model's rate, the one the data was prepared for.
                self._items = [EvaluationItem.from_prepared(row, synthesizer.sampling_rate) for row in rows]
        return self._items


def _is_training_evaluation(metrics: dict[str, float]) -> bool:
    prefixes = [key.removesuffix("_runtime") for key in metrics if key.endswith("_runtime")]
    # Without a runtime key (metrics passed by hand) the evaluation is taken to be the training's own.
    return not prefixes or "eval" in prefixes

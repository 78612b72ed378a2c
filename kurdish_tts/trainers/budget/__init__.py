"""Fit a training run to a wall-clock budget: time real steps, plan `max_steps`, stop gracefully at the deadline.

`accelerate launch scripts/train_vits.py --target_hours 9.5` should train for as many steps as fit in 9.5 hours,
with the learning-rate schedule (warm-up, then decay) spanning exactly those steps. The schedule is fixed when
`train()` starts, so the number of steps must be known beforehand. Four pieces do this:

1. `measure_step_time` runs a short probe, a real `trainer.train()` of a few steps on this machine with the real
   dataloader, and puts the model and the trainer back exactly as they were.
2. `plan_run` (or `plan_remaining` for a resumed run) chooses `max_steps` so that the steps, the periodic evaluations
   and checkpoints, and the final evaluation and save fit in what is left of the budget.
3. `apply_plan` sets `args.max_steps` and attaches a `TimeBudgetCallback`.
4. `TimeBudgetCallback` stops the run early, with time left for the final evaluation and save, if it runs slower
   than planned; it also records the budget spent in `budget.json`, so that a resumed run plans with the rest.

They live in `probe.py` (1), `plan.py` (2), `callback.py` (3, 4) and `schedules.py` (moving the end of a running
learning-rate schedule when the callback re-plans); every name is imported from here.

Example:

```python
>>> from kurdish_tts.trainers.budget import apply_plan, measure_step_time, plan_remaining, plan_run
>>> started = time.time()  # before loading data, if the budget covers the whole job
>>> trainer = VitsTrainer(model, args, train_dataset=train, eval_dataset=dev, processing_class=tokenizer)
>>> timing = measure_step_time(trainer)
>>> if last_checkpoint is None:
...     plan = plan_run(timing, 9.5 * 3600, args=args, num_train_samples=len(train),
...                     elapsed_seconds=time.time() - started)
... else:
...     plan = plan_remaining(timing, 9.5 * 3600, checkpoint=last_checkpoint, args=args,
...                           num_train_samples=len(train), elapsed_seconds=time.time() - started)
>>> apply_plan(trainer, plan)
>>> trainer.train(resume_from_checkpoint=last_checkpoint)
>>> trainer.save_model(); trainer.evaluate()
```
"""

import time

# The clocks of every measurement and deadline of the budget, looked up at each call: tests put one simulated clock in both,
# advanced by what each step, evaluation and save is declared to take, so that no test depends on the machine's speed.
wall_clock = time.time  # instants: the budget's start, its deadline, plans
interval_clock = time.perf_counter  # durations within this process: the probe's steps

# The modules below read the clocks from here at each call, so that replacing `budget.wall_clock` reaches all of them.
from .callback import TimeBudgetCallback, apply_plan  # noqa: E402
from .plan import (  # noqa: E402
    BUDGET_NAME,
    TrainingPlan,
    budget_spent,
    plan_remaining,
    plan_run,
    program_start_time,
)
from .probe import StepTiming, measure_step_time  # noqa: E402
from .schedules import RETARGETABLE_SCHEDULES, _retarget_schedules  # noqa: E402, F401 (tests call the private one)

__all__ = [
    "BUDGET_NAME",
    "RETARGETABLE_SCHEDULES",
    "StepTiming",
    "TimeBudgetCallback",
    "TrainingPlan",
    "apply_plan",
    "budget_spent",
    "interval_clock",
    "measure_step_time",
    "plan_remaining",
    "plan_run",
    "program_start_time",
    "wall_clock",
]

"""Time-budgeted training: plan arithmetic, the deadline callback, the probe, and real planned runs on CPU."""

import json
import os
import time
from types import SimpleNamespace
from unittest.mock import patch

import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from kurdish_tts.trainers import VitsTrainer, budget
from kurdish_tts.trainers.budget import (
    StepTiming,
    TimeBudgetCallback,
    TrainingPlan,
    apply_plan,
    budget_spent,
    measure_step_time,
    plan_remaining,
    plan_run,
)

from .testing_utils import tiny_model, tiny_training_args


@pytest.fixture(scope="module")
def prepared(tiny_demo):
    return tiny_demo


def hand_made_timing(**overrides):
    values = {
        "seconds_per_step": 0.5,
        "median_seconds_per_step": 0.5,
        "samples_per_second": 32.0,
        "train_batch_size": 16,
        "steps_per_epoch": 100,
        "eval_seconds": 30.0,
        "checkpoint_seconds": 10.0,
        "save_model_seconds": 5.0,
        "train_setup_seconds": 15.0,
        "train_teardown_seconds": 5.0,
        "probe_seconds": 60.25,
        "step_seconds": [0.5],
    }
    return StepTiming(**{**values, **overrides})


def plain_args(tmp_dir, **overrides):
    values = {"output_dir": str(tmp_dir), "use_cpu": True, "report_to": "none", "save_strategy": "no"}
    return TrainingArguments(**{**values, **overrides})


class TestPlanRun:
    # All cases: a 3,600 s budget less 2 % (3,528 s), less the 60.25 s probe, the 20 s set-up of `train()` and the
    # final evaluation and save (30 + 5 s), leaves 3,412.75 s for the steps and the periodic evaluations and
    # checkpoints (a quarter second away from any step boundary, so that rounding cannot flip a step).

    def test_plan_steps_evaluations_and_checkpoints(self, tmp_dir):
        args = plain_args(tmp_dir, eval_strategy="steps", eval_steps=1000, save_strategy="steps", save_steps=2000)
        plan = plan_run(hand_made_timing(), 3600, args=args, num_train_samples=1600)
        # 6,325 steps: 3,162.5 s; evaluations at 1,000 ... 6,000 and at the last step: 7 x 30 s; checkpoints at 2,000,
        # 4,000, 6,000 and the last step: 4 x 10 s. 3,162.5 + 210 + 40 = 3,412.5 s; one more step would not fit.
        assert (plan.steps, plan.num_evaluations, plan.num_checkpoints) == (6325, 7, 4)
        assert plan.epochs == pytest.approx(63.25)
        assert plan.predicted_seconds == pytest.approx(20 + 35 + 3412.5)
        # A late run stopped early still needs: its last checkpoint, the end of `train()` and the final work.
        assert plan.reserve_seconds == pytest.approx(10 + 5 + 35)
        assert plan.deadline == pytest.approx(plan.planned_at - 60.25 + 3600)
        table = plan.to_markdown()
        assert "| Steps (`max_steps`) | 6,325 |" in table and "| Evaluations | 7 x 30.0 s |" in table
        assert str(plan) == table

    def test_plan_evaluations_per_epoch(self, tmp_dir):
        args = plain_args(tmp_dir, eval_strategy="epoch", save_strategy="epoch")
        plan = plan_run(hand_made_timing(), 3600, args=args, num_train_samples=1600)
        # 3,785 steps: 1,892.5 s; 38 epoch ends (the 38th after 85 of its 100 steps) with an evaluation and a
        # checkpoint each: 38 x 40 = 1,520 s. 1,892.5 + 1,520 = 3,412.5 s.
        assert (plan.steps, plan.num_evaluations, plan.num_checkpoints) == (3785, 38, 38)
        assert plan.epochs == pytest.approx(37.85)

    def test_plan_without_evaluation_or_checkpoints(self, tmp_dir):
        timing = hand_made_timing(eval_seconds=0.0)
        plan = plan_run(timing, 3600, args=plain_args(tmp_dir), num_train_samples=1600, elapsed_seconds=100.25)
        # 3,528 - 100.25 elapsed - 20 set-up - 5 final save = 3,402.75 s of steps.
        assert (plan.steps, plan.num_evaluations, plan.num_checkpoints) == (6805, 0, 0)

    def test_resumed_plan_counts_only_its_own_evaluations(self, tmp_dir):
        args = plain_args(tmp_dir, eval_strategy="steps", eval_steps=1000, save_strategy="steps", save_steps=2000)
        plan = plan_run(hand_made_timing(), 3600, args=args, num_train_samples=1600, start_step=5500)
        # The same 3,412.75 s from step 5,500: evaluations at 6,000 ... 11,000 and the last step; checkpoints at
        # 6,000, 8,000, 10,000 and the last step. 6,325 steps again, ending at 11,825.
        assert (plan.start_step, plan.steps, plan.num_evaluations, plan.num_checkpoints) == (5500, 11825, 7, 4)

    def test_too_small_a_budget_is_refused(self, tmp_dir):
        with pytest.raises(ValueError, match=r"--target_hours 0\.01 \(0:00:36\) is shorter than what the run needs"):
            plan_run(hand_made_timing(), 36, args=plain_args(tmp_dir), num_train_samples=1600)

    def test_a_budget_too_small_for_the_minimum_steps_is_raised_to_hold_them(self, tmp_dir):
        """The demo on a busy CPU: the budget cannot hold one step, so the plan trains the minimum, late."""
        plan = plan_run(hand_made_timing(), 36, args=plain_args(tmp_dir), num_train_samples=1600, min_steps=30)
        # 60.25 s spent + 20 s set-up and tear-down of `train()` + 35 s final evaluation and save + 30 x 0.5 s of
        # steps, over the 2 % margin.
        assert plan.steps == 30 and plan.requested_target_seconds == 36
        assert plan.target_seconds == pytest.approx((60.25 + 20 + 35 + 15) / 0.98)
        assert plan.deadline == pytest.approx(plan.started_at + plan.target_seconds)
        assert "raised from the 0:00:36 asked for" in plan.to_markdown()
        # A budget that holds more than the minimum is planned as usual, and says nothing of it.
        usual = plan_run(hand_made_timing(), 3600, args=plain_args(tmp_dir), num_train_samples=1600, min_steps=30)
        without = plan_run(hand_made_timing(), 3600, args=plain_args(tmp_dir), num_train_samples=1600)
        assert usual.requested_target_seconds is None and usual.steps == without.steps > 30

    def test_plan_survives_a_round_trip_through_json(self, tmp_dir):
        plan = plan_run(hand_made_timing(), 3600, args=plain_args(tmp_dir), num_train_samples=1600)
        assert TrainingPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


class FakeClock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    """A simulated clock for every measurement and deadline of the budget, starting at the real time (the plans print
    dates). Only `SimulatedTrainer` moves it: the tests below never depend on how fast this machine is."""
    fake = FakeClock(time.time())
    monkeypatch.setattr(budget, "wall_clock", fake)
    monkeypatch.setattr(budget, "interval_clock", fake)
    return fake


class SimulatedTrainer(VitsTrainer):
    """A real VitsTrainer whose steps, evaluations, checkpoints and saves take declared times on `clock`."""

    def __init__(self, *args, clock: FakeClock, step=0.25, evaluation=1.0, checkpoint=0.5, save=0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock, self.seconds = (
            clock,
            {"step": step, "evaluation": evaluation, "checkpoint": checkpoint, "save": save},
        )

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        self.clock.advance(self.seconds["step"])
        return loss

    def evaluate(self, *args, **kwargs):
        self.clock.advance(self.seconds["evaluation"])
        return super().evaluate(*args, **kwargs)

    def _save_checkpoint(self, *args, **kwargs):
        super()._save_checkpoint(*args, **kwargs)
        self.clock.advance(self.seconds["checkpoint"])

    def save_model(self, output_dir=None, _internal_call=False):
        super().save_model(output_dir, _internal_call=_internal_call)
        if not _internal_call:  # a checkpoint's own save is part of its time
            self.clock.advance(self.seconds["save"])


def drive(callback, args, clock, *, step_seconds=1.0, eval_every=None, eval_seconds=0.0, max_steps=1000):
    """Steps the callback like the Trainer does; returns the control and the step it stopped at (or None)."""
    state = TrainerState(max_steps=max_steps, is_world_process_zero=True)
    control = TrainerControl()
    callback.on_train_begin(args, state, control)
    for step in range(1, max_steps + 1):
        clock.now += step_seconds
        state.global_step = step
        control.should_evaluate = eval_every is not None and step % eval_every == 0
        control = callback.on_step_end(args, state, control)
        if control.should_training_stop:
            return control, step
        if control.should_evaluate:
            clock.now += eval_seconds
            callback.on_evaluate(args, state, control, metrics={})
            control.should_evaluate = False
    return control, None


class TestTimeBudgetCallback:
    def test_stops_when_the_deadline_minus_the_reserve_is_reached(self, tmp_dir):
        clock = FakeClock()
        callback = TimeBudgetCallback(deadline=100.0, reserve_seconds=10.0, step_seconds=1.0)
        with patch.object(budget, "wall_clock", clock):
            control, stopped = drive(callback, plain_args(tmp_dir, save_strategy="steps"), clock)
        # After step 90 the clock reads 90 = deadline - reserve: one more 1 s step would eat into the reserve.
        assert stopped == 90 and clock.now == 90.0
        assert callback.stopped_early and callback.stopped_at_step == 90
        assert control.should_save  # the last step is kept as a checkpoint

    def test_follows_the_measured_pace_rather_than_the_planned_one(self, tmp_dir):
        clock = FakeClock()
        callback = TimeBudgetCallback(deadline=101.0, reserve_seconds=10.0, step_seconds=1.0)
        with patch.object(budget, "wall_clock", clock):
            control, stopped = drive(callback, plain_args(tmp_dir), clock, step_seconds=3.0)
        # Steps take 3 s, not the planned 1 s: at 90 s, 90 + 3 + 10 > 101, so it stops at step 30, not at step 31
        # (93 s), which would finish the final work at 106 s.
        assert stopped == 30 and callback.expected_step_seconds == 3.0
        assert not control.should_save  # save_strategy="no": no checkpoint is forced

    def test_counts_the_evaluation_due_at_this_step(self, tmp_dir):
        clock = FakeClock()
        callback = TimeBudgetCallback(deadline=100.0, reserve_seconds=10.0, step_seconds=1.0, eval_seconds=15.0)
        with patch.object(budget, "wall_clock", clock):
            control, stopped = drive(callback, plain_args(tmp_dir), clock, eval_every=30, eval_seconds=15.0)
        # The evaluation at step 30 moves the clock from 30 to 45 s. At step 60 (75 s), going on means the
        # evaluation due now, then a step: 75 + 15 + 1 + 10 > 100, so it stops there rather than at step 74 (89 s).
        assert stopped == 60
        # ... and skips that evaluation (the script's final one follows at once), at the step and at the epoch end.
        assert not control.should_evaluate
        control.should_evaluate = control.should_save = True
        callback.on_epoch_end(plain_args(tmp_dir), TrainerState(), control)
        assert not control.should_evaluate and not control.should_save
        # The step after an evaluation is no step time.
        assert callback.expected_step_seconds == 1.0 and callback.eval_seconds == 15.0

    def test_a_slow_first_evaluation_is_not_charged_to_the_later_ones(self, tmp_dir):
        """The first evaluation of an H100 run took 25 s (one-off start-up of the synthesis metrics), the later ones
        about 3 s; taking the latest evaluation as the pace of the rest once ended that run 43 % early."""
        clock = FakeClock()
        callback = TimeBudgetCallback(deadline=1000.0, reserve_seconds=10.0, step_seconds=1.0, eval_seconds=3.0)
        args = plain_args(tmp_dir)
        state = TrainerState(max_steps=1000, is_world_process_zero=True)
        control = TrainerControl()
        with patch.object(budget, "wall_clock", clock):
            callback.on_train_begin(args, state, control)
            for step, seconds in ((10, 25.0), (20, 3.2), (30, 2.8)):
                clock.now += 10.0
                state.global_step = step
                callback.on_step_end(args, state, control)
                clock.now += seconds
                callback.on_evaluate(args, state, control, metrics={})
                if step == 10:
                    # With one evaluation seen, the estimate made before the run stands.
                    assert callback.eval_seconds == 3.0
        assert callback.eval_seconds == pytest.approx(3.0)

    def test_the_first_evaluation_sets_the_pace_when_nothing_was_planned(self, tmp_dir):
        clock = FakeClock()
        callback = TimeBudgetCallback(deadline=1000.0, reserve_seconds=10.0, step_seconds=1.0)
        with patch.object(budget, "wall_clock", clock):
            drive(callback, plain_args(tmp_dir), clock, eval_every=30, eval_seconds=7.0, max_steps=40)
        assert callback.eval_seconds == 7.0

    def test_a_run_on_time_ends_at_max_steps(self, tmp_dir):
        clock = FakeClock()
        callback = TimeBudgetCallback(deadline=100.0, reserve_seconds=10.0)
        with patch.object(budget, "wall_clock", clock):
            control, stopped = drive(callback, plain_args(tmp_dir), clock, max_steps=50)
        assert stopped is None and not callback.stopped_early and not control.should_training_stop


def _step_on_two_processes(rank, init_file, out_dir):
    """One `on_step_end` per process of a 2-process gloo group, where only process 1 is late."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        clock = FakeClock(now=50.0 if rank == 0 else 95.0)
        callback = TimeBudgetCallback(deadline=100.0, reserve_seconds=10.0, step_seconds=1.0)
        # A stand-in for `TrainingArguments`, whose device set-up would start a distributed state of its own.
        args = SimpleNamespace(device=torch.device("cpu"), save_strategy="no", should_log=False)
        state = TrainerState(max_steps=100, global_step=5, is_world_process_zero=rank == 0)
        with patch.object(budget, "wall_clock", clock):
            control = callback.on_step_end(args, state, TrainerControl())
        (out_dir / f"rank-{rank}.json").write_text(json.dumps(control.should_training_stop))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_processes_stop_together(tmp_dir):
    torch.multiprocessing.spawn(_step_on_two_processes, args=(tmp_dir / "init", tmp_dir), nprocs=2)
    assert [json.loads((tmp_dir / f"rank-{rank}.json").read_text()) for rank in (0, 1)] == [True, True]


class TestMeasureStepTime:
    @pytest.mark.parametrize("gan_update", ["fused", "alternating"])
    def test_probe_leaves_the_run_unchanged(self, prepared, tokenizer, tmp_dir, gan_update):
        """A probed trainer trains exactly like one that was never probed: same losses, same weights."""
        runs = {}
        for name in ("straight", "probed"):
            args = tiny_training_args(
                tmp_dir / name,
                max_steps=3,
                gan_update=gan_update,
                save_strategy="steps",
                save_steps=100,
                eval_strategy="steps",
                eval_steps=100,
            )
            trainer = VitsTrainer(
                tiny_model(tokenizer),
                args,
                train_dataset=prepared,
                eval_dataset=prepared.select(range(2)),
                processing_class=tokenizer,
            )
            if name == "probed":
                timing = measure_step_time(trainer, probe_steps=3, warmup_steps=1)
                assert trainer.optimizer is None and trainer.lr_scheduler is None
                assert trainer.state.global_step == 0 and trainer.args.max_steps == 3
                assert not [n for n in os.listdir(tmp_dir / name) if n.startswith("budget-probe-")]
            trainer.train()
            losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
            runs[name] = losses, {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

        assert runs["probed"][0] == runs["straight"][0]
        for name, parameter in runs["straight"][1].items():
            assert torch.equal(runs["probed"][1][name], parameter), name
        assert len(timing.step_seconds) == 3 and timing.seconds_per_step > 0
        assert timing.steps_per_epoch == 3  # 6 clips, 2 per step
        assert timing.train_batch_size == 2 and timing.samples_per_second == pytest.approx(2 / timing.seconds_per_step)
        assert timing.eval_seconds > 0 and timing.checkpoint_seconds > 0 and timing.save_model_seconds > 0

    def test_steps_with_one_off_work_are_left_out_of_the_pace(self, prepared, tokenizer, tmp_dir):
        """Steps that capture a CUDA graph (one per batch shape) are slow once; an H100 probe whose steps were mostly
        captures planned 2.7x too few steps. A trainer that counts such steps gets them left out."""

        class CapturingTrainer(VitsTrainer):
            one_off_step_count = 0

            def training_step(self, *args, **kwargs):
                loss = super().training_step(*args, **kwargs)
                if self.state.global_step in (3, 5):  # 0-based: the 4th and 6th steps, both timed
                    time.sleep(1.0)
                    self.one_off_step_count += 1
                return loss

        args = tiny_training_args(tmp_dir, max_steps=1)
        trainer = CapturingTrainer(tiny_model(tokenizer), args, train_dataset=prepared, processing_class=tokenizer)
        timing = measure_step_time(trainer, probe_steps=6, warmup_steps=2)
        assert timing.one_off_steps == 2
        # Timed steps 2 and 4 of 6 (after the warm-up) are the sleeping ones.
        assert timing.step_seconds[1] > 1.0 and timing.step_seconds[3] > 1.0
        ordinary = [seconds for index, seconds in enumerate(timing.step_seconds) if index not in (1, 3)]
        assert timing.seconds_per_step == pytest.approx(sum(ordinary) / len(ordinary))


def planned_run(prepared, tokenizer, tmp_dir, target_seconds, clock=None, **probe):
    """The train script's story from the probe on: returns the wall time, the trainer, the plan and the callback.

    With `clock`, on simulated time (`SimulatedTrainer`); without, on this machine's."""
    args = tiny_training_args(
        tmp_dir,
        logging_steps=10,
        eval_strategy="steps",
        eval_steps=15,
        save_strategy="steps",
        save_steps=20,
    )
    data = {"train_dataset": prepared, "eval_dataset": prepared.select(range(2)), "processing_class": tokenizer}
    if clock is None:
        trainer, now = VitsTrainer(tiny_model(tokenizer), args, **data), time.time
    else:
        trainer, now = SimulatedTrainer(tiny_model(tokenizer), args, clock=clock, **data), clock
    started = now()
    timing = measure_step_time(trainer, **probe)
    plan = plan_run(
        timing, target_seconds, args=args, num_train_samples=len(prepared), elapsed_seconds=now() - started
    )
    callback = apply_plan(trainer, plan)
    trainer.train()
    trainer.save_model()
    trainer.evaluate()
    return now() - started, trainer, plan, callback


class TestPlannedRun:
    def test_short_budget_is_filled(self, prepared, tokenizer, tmp_dir, clock):
        """A 20 s budget, probe included, in simulated time: 0.25 s steps, 1 s evaluations, 0.5 s checkpoints and
        saves, whatever this machine's speed (the real-time version of this check is `test_forty_second_budget_...`,
        marked slow, and benchmarks/bench_budget_run.py). The probe measures exactly the run's pace, so the run ends
        at its planned step, within the 2 % margin of the budget, and never after it."""
        wall, trainer, plan, callback = planned_run(
            prepared, tokenizer, tmp_dir, 20.0, clock=clock, probe_steps=10, warmup_steps=3
        )
        assert plan.seconds_per_step == pytest.approx(0.25) and plan.eval_seconds == pytest.approx(1.0)
        assert plan.checkpoint_seconds == pytest.approx(0.5)
        assert 0.95 * 20.0 <= wall <= 0.98 * 20.0, (wall, str(plan))
        assert wall == pytest.approx(plan.elapsed_seconds + plan.predicted_seconds)
        assert trainer.state.global_step == plan.steps == trainer.state.max_steps and not callback.stopped_early
        assert not callback.replans
        record = json.loads((tmp_dir / "budget.json").read_text())
        assert record["global_step"] == trainer.state.global_step
        assert record["plan"]["steps"] == plan.steps and record["deadline"] == pytest.approx(plan.deadline)
        assert (tmp_dir / "checkpoint-20" / "budget.json").is_file()

    @pytest.mark.slow
    def test_forty_second_budget_within_ten_percent(self, prepared, tokenizer, tmp_dir):
        wall, _, plan, _ = planned_run(prepared, tokenizer, tmp_dir, 40.0)
        assert 0.90 * 40.0 <= wall <= 1.10 * 40.0, (wall, str(plan))


class TestResume:
    def test_resumed_run_plans_with_the_remaining_budget(self, prepared, tokenizer, tmp_dir, clock):
        """In simulated time, 10 s per step: the first run spends 20 s up to checkpoint-2."""
        data = prepared.select(range(4))
        args = tiny_training_args(tmp_dir, max_steps=4, save_strategy="steps", save_steps=2)
        seconds = {"step": 10.0, "evaluation": 0.0, "checkpoint": 0.0, "save": 0.0}
        trainer = SimulatedTrainer(
            tiny_model(tokenizer), args, train_dataset=data, processing_class=tokenizer, clock=clock, **seconds
        )
        first = TimeBudgetCallback(deadline=clock() + 3600, reserve_seconds=0.0)
        trainer.add_callback(first)
        trainer.train()

        checkpoint = tmp_dir / "checkpoint-2"
        spent, step = budget_spent(checkpoint)
        assert step == 2 and spent == pytest.approx(20.0)
        assert json.loads((tmp_dir / "budget.json").read_text())["global_step"] == 4

        # Hand-made timing with 10 s steps, so that the plan is 3 more steps and its deadline far away.
        timing = hand_made_timing(
            seconds_per_step=10.0, eval_seconds=0.0, checkpoint_seconds=0.0, save_model_seconds=0.0,
            train_setup_seconds=0.0, train_teardown_seconds=0.0, probe_seconds=1.0,
        )  # fmt: skip
        target = spent + 1.0 + 35.0
        plan = plan_remaining(
            timing, target, checkpoint=checkpoint, args=args, num_train_samples=len(data), safety_margin=0.0
        )
        assert plan.elapsed_seconds == pytest.approx(spent + 1.0)
        assert (plan.start_step, plan.steps) == (2, 5)
        expected = plan_run(
            timing, target, args=args, num_train_samples=len(data), safety_margin=0.0,
            elapsed_seconds=spent + 1.0, start_step=2,
        )  # fmt: skip
        assert expected.steps == plan.steps and expected.deadline == pytest.approx(plan.deadline)

        resumed = SimulatedTrainer(
            tiny_model(tokenizer, seed=1), args, train_dataset=data, processing_class=tokenizer, clock=clock, **seconds
        )
        apply_plan(resumed, plan)
        resumed.train(resume_from_checkpoint=str(checkpoint))
        assert resumed.state.global_step == 5
        record = json.loads((tmp_dir / "budget.json").read_text())
        assert record["global_step"] == 5 and record["elapsed_seconds"] > plan.elapsed_seconds
        assert record["started_at"] == pytest.approx(plan.started_at)

    def test_without_a_budget_record_the_train_runtime_counts(self, tmp_dir):
        checkpoint = tmp_dir / "checkpoint-7"
        checkpoint.mkdir()
        TrainerState(global_step=7, log_history=[{"loss": 1.0}, {"train_runtime": 12.5}]).save_to_json(
            str(checkpoint / "trainer_state.json")
        )
        assert budget_spent(checkpoint) == (12.5, 7)


class TestReplanning:
    def test_retarget_moves_the_end_of_the_schedule_and_keeps_lowered_rates(self, tmp_dir):
        from transformers import get_scheduler

        weight = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.AdamW([weight], lr=1.0)
        scheduler = get_scheduler("linear", optimizer, num_warmup_steps=2, num_training_steps=100)
        for _ in range(10):
            optimizer.step()
            scheduler.step()
        scheduler.base_lrs = [0.5]  # as NaN recovery leaves it
        trainer = SimpleNamespace(lr_scheduler=scheduler)
        assert budget._retarget_schedules(trainer, total_steps=20, warmup_steps=2)
        # Linear decay from step 2 to step 20, at step 10, from the lowered peak.
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (20 - 10) / (20 - 2))
        for _ in range(10):
            optimizer.step()
            scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)

    def test_other_schedules_are_not_retargeted(self):
        weight = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.AdamW([weight], lr=1.0)
        trainer = SimpleNamespace(lr_scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 5))
        assert not budget._retarget_schedules(trainer, total_steps=20, warmup_steps=0)

    @pytest.mark.parametrize("probe_factor", [0.6, 1.6, 4.3])
    def test_a_wrong_probe_is_corrected_while_training(self, prepared, tokenizer, tmp_dir, clock, probe_factor):
        """The probe's step time is cut to 60 % (or raised to 160 %, or to 430 % as an H100's probe was for the
        XTTS-style model) by hand: the plan has two thirds more steps than fit (or far fewer). Without re-planning, the deadline would stop the run with its schedule half done (or the
        run would end early). The callback re-plans with the measured pace: the run ends at its new last step, in
        time, and the linear schedule reaches zero there. In simulated time (0.25 s steps), so that the premise and
        the outcome do not depend on this machine's speed."""
        target = 20.0
        args = tiny_training_args(tmp_dir, logging_steps=5, lr_scheduler_type="linear", save_strategy="no")
        trainer = SimulatedTrainer(
            tiny_model(tokenizer), args, train_dataset=prepared, processing_class=tokenizer, clock=clock
        )
        started = clock()
        timing = measure_step_time(trainer, probe_steps=8, warmup_steps=2)
        assert timing.seconds_per_step == pytest.approx(0.25)
        wrong = hand_made_timing(
            **{
                **timing.__dict__,
                "seconds_per_step": probe_factor * timing.seconds_per_step,
                "step_seconds": timing.step_seconds,
            }
        )
        plan = plan_run(wrong, target, args=args, num_train_samples=len(prepared), elapsed_seconds=clock() - started)
        callback = apply_plan(trainer, plan)
        callback.min_replan_steps = 8
        assert args.max_steps == 5 * plan.steps
        trainer.train()
        wall = clock() - started

        assert callback.replans, callback.replans
        if probe_factor < 1:
            assert trainer.state.global_step < 0.85 * plan.steps, callback.replans
        else:
            assert trainer.state.global_step > 1.3 * plan.steps, callback.replans
        assert trainer.state.global_step == trainer.state.max_steps and not callback.stopped_early, callback.replans
        assert 0.9 * target <= wall <= target, (wall, callback.replans)
        rates = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
        assert rates[-1] < 0.15 * max(rates), rates
        record = json.loads((tmp_dir / "budget.json").read_text())
        assert record["planned_steps"] == trainer.state.global_step and record["replans"] == callback.replans

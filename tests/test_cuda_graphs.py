"""CUDA-graphed training loss: the same gradients as eager autograd, accumulation included; trainer wiring.

The graph tests need a GPU (`python -m pytest -m gpu tests/test_cuda_graphs.py`); the argument checks run anywhere.
"""

import pytest
import torch
from torch import nn

from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_arguments_pad_batches_and_refuse_the_alternating_update(tmp_path):
    args = VitsTrainingArguments(tmp_path, cuda_graphs=True, report_to="none")
    assert args.pad_to_multiple_of == 64
    assert not args.logging_nan_inf_filter and args.accelerator_config.non_blocking
    assert VitsTrainingArguments(tmp_path, cuda_graphs=True, pad_to_multiple_of=32).pad_to_multiple_of == 32
    with pytest.raises(ValueError, match="gan_update='fused'"):
        VitsTrainingArguments(tmp_path, cuda_graphs=True, gan_update="alternating")
    with pytest.raises(ValueError, match="cuda_graphs_max_shapes"):
        VitsTrainingArguments(tmp_path, cuda_graphs=True, cuda_graphs_max_shapes=0)


def test_trainer_refuses_cuda_graphs_without_a_gpu(tmp_path, tokenizer):
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    args = VitsTrainingArguments(tmp_path, cuda_graphs=True, use_cpu=True, report_to="none")
    with pytest.raises(ValueError, match="exactly one CUDA device"):
        VitsTrainer(model, args)


class _Toy(nn.Module):
    """Dropout-free, so that eager and graphed runs are comparable value for value."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(8, 16)
        self.second = nn.Linear(16, 1)
        self.unused = nn.Linear(2, 2)

    def loss(self, inputs, targets):
        prediction = self.second(torch.tanh(self.first(inputs))).squeeze(-1)
        terms = torch.stack([(prediction - targets).square().mean(), prediction.abs().mean()])
        return terms.sum(), terms.detach()


@pytest.mark.gpu
@cuda
def test_graphed_loss_gives_eager_gradients_with_accumulation_and_several_shapes():
    from kurdish_tts.models.vits.cuda_graphs import GraphedLoss

    torch.manual_seed(0)
    eager, graphed_model = _Toy().cuda(), _Toy().cuda()
    graphed_model.load_state_dict(eager.state_dict())
    graphed = GraphedLoss(graphed_model.loss, list(graphed_model.parameters()), max_graphs=2)
    batches = [(torch.randn(n, 8, device="cuda"), torch.randn(n, device="cuda")) for n in (4, 4, 6, 4, 3)]

    # Three micro-batches accumulate into one set of gradients (the step a captured buffer would corrupt).
    for inputs, targets in batches[:3]:
        eager.loss(inputs, targets)[0].mul(0.5).backward()
        loss, terms = graphed(inputs, targets)
        loss.mul(0.5).backward()
        torch.testing.assert_close(terms, eager.loss(inputs, targets)[1])
    for mine, reference in zip(graphed_model.parameters(), eager.parameters()):
        if reference.grad is None:
            assert mine.grad is None
        else:
            torch.testing.assert_close(mine.grad, reference.grad)
    assert graphed.stats()["graphs"] == 2

    # A third shape past max_graphs runs eagerly (the caller falls back), a known shape replays.
    assert graphed(*batches[4]) is None and graphed.eager_calls == 1
    replays = graphed.replays
    graphed(*batches[3])
    assert graphed.replays == replays + 1


@pytest.mark.gpu
@cuda
def test_trainer_with_cuda_graphs_trains_the_tiny_model(tmp_path, tokenizer, tiny_demo):
    torch.manual_seed(0)
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = VitsTrainingArguments(
        tmp_path,
        cuda_graphs=True,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=6,
        bf16=True,
        logging_steps=3,
        save_strategy="no",
        report_to="none",
        dataloader_drop_last=True,
    )
    trainer = VitsTrainer(model, args, train_dataset=tiny_demo, processing_class=tokenizer)
    trainer.train()

    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logs and all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logs)
    assert logs[-1]["cuda_graphs/graphs"] >= 1 and logs[-1]["cuda_graphs/replays"] >= 6
    assert all(name in logs[-1] for name in ("loss/mel", "loss/kl", "loss/duration", "loss/disc"))
    moved = [name for name, p in model.named_parameters() if not torch.equal(p.detach().cpu(), before[name])]
    assert any(name.startswith("vits.") for name in moved) and any(name.startswith("discriminator.") for name in moved)


@pytest.mark.gpu
@cuda
def test_nan_recovery_under_cuda_graphs_undoes_a_poisoned_batch(tmp_path, tokenizer, tiny_demo):
    import dataclasses

    from kurdish_tts.data.collators import DataCollatorForVits
    from kurdish_tts.trainers import NanRecoveryCallback

    @dataclasses.dataclass
    class PoisonThirdBatch(DataCollatorForVits):
        calls: int = 0

        def __call__(self, features):
            batch = super().__call__(features)
            self.calls += 1
            if self.calls == 3:
                batch["mel"] = batch["mel"] * float("nan")
            return batch

    torch.manual_seed(0)
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    args = VitsTrainingArguments(
        tmp_path,
        cuda_graphs=True,
        per_device_train_batch_size=2,
        max_steps=6,
        bf16=True,
        logging_steps=100,
        save_strategy="no",
        report_to="none",
        dataloader_drop_last=True,
    )
    collator = PoisonThirdBatch(
        hop_length=model.mel_config.hop_length, min_frames=model.segment_frames, pad_to_multiple_of=64
    )
    trainer = VitsTrainer(model, args, train_dataset=tiny_demo, processing_class=tokenizer, data_collator=collator)
    # Snapshots every 2 steps: step 3 is checked late, at the end of step 4.
    recovery = NanRecoveryCallback(snapshot_steps=2).attach(trainer)
    trainer.train()

    assert recovery.recoveries == 1 and recovery._deferred
    assert recovery.events[0]["step"] == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())

"""`VitsTrainer` under two CPU processes (gloo): the logged loss terms are the run's averages, not one process's."""

import json

import pytest

from .testing_utils import torchrun


def read_results(output_dir):
    """Each process writes its own file: both share one stdout, where their lines can interleave."""
    return [json.loads(path.read_text()) for path in sorted(output_dir.glob("result_*.json"))]


SCRIPT = """
import json, sys
import torch
from datasets import load_from_disk
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.text import build_kurmanji_tokenizer
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments

tokenizer = build_kurmanji_tokenizer()
torch.manual_seed(0)
model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
data = load_from_disk(sys.argv[2])
args = VitsTrainingArguments(sys.argv[1], use_cpu=True, report_to="none", per_device_eval_batch_size=1,
                             save_strategy="no", max_steps=1)
trainer = VitsTrainer(model, args, train_dataset=data, eval_dataset=data.select(range(4)), processing_class=tokenizer)
metrics = trainer.evaluate()
with open(f"{sys.argv[1]}/result_{args.process_index}.json", "w") as file:
    json.dump({"rank": args.process_index, "mel": metrics["eval_loss/mel"]}, file)

# An orderly end: a gloo group left to the interpreter's shutdown, its peer gone first, can abort a busy machine's run.
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_eval_loss_terms_are_averaged_over_processes(tiny_demo, tmp_dir):
    """Each process evaluates two of the four clips; without the all-reduce each reported its own half's mean."""
    (tmp_dir / "run.py").write_text(SCRIPT)
    tiny_demo.save_to_disk(str(tmp_dir / "data"))
    result = torchrun(tmp_dir / "run.py", tmp_dir / "out", tmp_dir / "data")
    assert result.returncode == 0, result.stderr[-3000:]
    values = read_results(tmp_dir / "out")
    assert len(values) == 2 and values[0]["mel"] == values[1]["mel"]


def test_dropped_layers_stay_in_the_graph_with_zero_gradient(tokenizer, tiny_demo, tmp_dir):
    """Under DDP without the unused-parameter search, a dropped text-encoder layer must still be part of the graph
    (else DDP fails at the next step) while acting exactly like transformers' skipped layer."""
    import torch

    from kurdish_tts.data.collators import DataCollatorForVits
    from kurdish_tts.trainers.vits_trainer import _keep_dropped_layers_in_graph

    from .testing_utils import tiny_model

    collator = DataCollatorForVits(hop_length=16, min_frames=8)
    batch = collator([tiny_demo.with_format("numpy")[i] for i in range(2)])
    batch = {key: value for key, value in batch.items() if key != "sample_ids"}

    skipped = tiny_model(tokenizer)
    skipped.vits.text_encoder.encoder.layerdrop = 1.0
    kept = tiny_model(tokenizer)
    kept.vits.text_encoder.encoder.layerdrop = 1.0
    _keep_dropped_layers_in_graph(kept)
    assert kept.vits.text_encoder.encoder.layerdrop == 0.0

    for model in (skipped, kept):
        model.train()
    torch.manual_seed(1)
    expected = skipped.vits.text_encoder(
        batch["input_ids"], padding_mask=batch["attention_mask"].unsqueeze(-1).float()
    )
    torch.manual_seed(1)
    actual = kept.vits.text_encoder(batch["input_ids"], padding_mask=batch["attention_mask"].unsqueeze(-1).float())
    torch.testing.assert_close(actual.last_hidden_state, expected.last_hidden_state, rtol=0, atol=0)

    actual.last_hidden_state.sum().backward()
    layer_grads = [p.grad for p in kept.vits.text_encoder.encoder.layers.parameters()]
    assert all(grad is not None for grad in layer_grads)
    assert all(torch.count_nonzero(grad) == 0 for grad in layer_grads)


def test_layers_are_not_dropped_in_eval_mode(tokenizer):
    import torch

    from kurdish_tts.trainers.vits_trainer import _keep_dropped_layers_in_graph

    from .testing_utils import tiny_model

    model = tiny_model(tokenizer)
    model.vits.text_encoder.encoder.layerdrop = 1.0
    _keep_dropped_layers_in_graph(model)
    model.eval()
    reference = tiny_model(tokenizer)
    reference.eval()
    ids = torch.tensor([[3, 5, 7, 9]])
    mask = torch.ones(1, 4, 1)
    torch.testing.assert_close(
        model.vits.text_encoder(ids, padding_mask=mask).last_hidden_state,
        reference.vits.text_encoder(ids, padding_mask=mask).last_hidden_state,
    )


TRAIN_SCRIPT = """
import json, sys
import torch
from datasets import load_from_disk
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.text import build_kurmanji_tokenizer
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments

tokenizer = build_kurmanji_tokenizer()
torch.manual_seed(0)
model = VitsForTraining.from_size("tiny", tokenizer.vocab_size, layerdrop=0.5)
data = load_from_disk(sys.argv[2])
args = VitsTrainingArguments(sys.argv[1], use_cpu=True, report_to="none", per_device_train_batch_size=1,
                             save_strategy="no", max_steps=4, logging_steps=1, disable_tqdm=True,
                             ddp_find_unused_parameters=False)
trainer = VitsTrainer(model, args, train_dataset=data, processing_class=tokenizer)
trainer.train()
ddp = trainer.model_wrapped
with open(f"{sys.argv[1]}/result_{args.process_index}.json", "w") as file:
    json.dump({"rank": args.process_index, "find_unused": ddp.find_unused_parameters,
               "steps": trainer.state.global_step,
               "layer": model.vits.text_encoder.encoder.layers[0].attention.k_proj.weight.sum().item()}, file)

# An orderly end: a gloo group left to the interpreter's shutdown, its peer gone first, can abort a busy machine's run.
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
"""


def test_two_processes_train_with_layer_drop_without_the_unused_parameter_search(tiny_demo, tmp_dir):
    """DDP without the unused-parameter search while layer drop is on (different layers per process): training runs
    and the processes' weights stay identical. Without the dropped layers kept in the graph, DDP fails at step 2."""
    (tmp_dir / "run.py").write_text(TRAIN_SCRIPT)
    tiny_demo.save_to_disk(str(tmp_dir / "data"))
    result = torchrun(tmp_dir / "run.py", tmp_dir / "out", tmp_dir / "data")
    assert result.returncode == 0, result.stderr[-3000:]
    values = read_results(tmp_dir / "out")
    assert len(values) == 2, result.stdout[-3000:]
    assert [value["find_unused"] for value in values] == [False, False]
    assert [value["steps"] for value in values] == [4, 4]
    assert values[0]["layer"] == values[1]["layer"]


def test_discriminator_warmup_refuses_ddp_without_the_unused_parameter_search(tmp_dir):
    import pytest

    from .testing_utils import tiny_training_args

    with pytest.raises(ValueError, match="ddp_find_unused_parameters"):
        tiny_training_args(tmp_dir, discriminator_warmup_steps=5, ddp_find_unused_parameters=False)

"""`VitsTrainer` under two CPU processes (gloo): the logged loss terms are the run's averages, not one process's."""

import json

import pytest

from .testing_utils import torchrun

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
print("RESULT", json.dumps({"rank": args.process_index, "mel": metrics["eval_loss/mel"]}), flush=True)
"""


@pytest.mark.slow
def test_eval_loss_terms_are_averaged_over_processes(tiny_demo, tmp_dir):
    """Each process evaluates two of the four clips; without the all-reduce each reported its own half's mean."""
    (tmp_dir / "run.py").write_text(SCRIPT)
    tiny_demo.save_to_disk(str(tmp_dir / "data"))
    result = torchrun(tmp_dir / "run.py", tmp_dir / "out", tmp_dir / "data", timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    values = [json.loads(line.split("RESULT", 1)[1]) for line in result.stdout.splitlines() if "RESULT" in line]
    assert len(values) == 2 and values[0]["mel"] == values[1]["mel"]

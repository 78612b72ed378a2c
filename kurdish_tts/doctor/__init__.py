"""`kurdish-tts doctor`: is the model and the data prepared right, and will this machine train it well?

Before a run of hours, the doctor checks, each answer reported as OK / WARN / FAIL with its evidence and its fix:

- the environment (`environment`): library versions, the GPU, bf16/fp16/TF32, CUDA graphs, dataloader workers;
- the recipe (`recipe`): learning rates, warm-up, clipping and loss weights against stable ranges, weight precision;
- the data against the model (`consistency`): sampling rate, hop length, spectrogram bins, the cache's `MelConfig`,
  vocabulary, characters the tokenizer cannot speak, speakers, and whether the cache is stale;
- a short training probe on one repeated batch (`training_probe`): finite loss and gradients, no frozen or dead
  parameter, both networks moving, the loss falling, gradient norms and the fp16 loss scale;
- a throughput probe on the real dataloader (`throughput`, `batch_size`): samples/s, data wait, GPU busy share and
  memory, the largest batch that fits and the worker count.

`run_doctor` takes the four argument dataclasses of `kurdish-tts train` and builds data, model and trainer with the
training script's own steps (`kurdish_tts.runs.VitsRun`), so it checks exactly what `train` would run.
"""

from .arguments import DoctorArguments
from .environment import MachineFacts, machine_facts
from .report import REPORT_NAME, Check, DoctorReport, Status
from .runner import run_doctor

__all__ = [
    "REPORT_NAME",
    "Check",
    "DoctorArguments",
    "DoctorReport",
    "MachineFacts",
    "Status",
    "machine_facts",
    "run_doctor",
]

#!/usr/bin/env bash
# Issue 8's two-GPU measurements for the XTTS path, in one go (ddp_two_gpus.sh does the same for VITS):
#   1. throughput: bench_xtts.py (small and base, bf16, guided attention on and off) on 1 GPU and on 2 GPUs (DDP
#      through torchrun, the same batch per GPU: samples/s of both GPUs against one);
#   2. loss parity: train_xtts.py at the same global batch (32) for the same steps on 1 GPU (seeds 0 and 1, side by
#      side, one per GPU, sharing one held-out split) and on 2 GPUs (16 per GPU, seed 0), then compare_runs.py.
#
#   bash benchmarks/xtts_two_gpus.sh CORPUS OUT
# CORPUS: an LJSpeech-style folder (e.g. the espeak-ng corpus of ddp_two_gpus.sh; several voices make the cloning
# part real); OUT: results. PARITY_STEPS (default 300) sets the parity runs' length. BENCH_OVERRIDES and
# TRAIN_OVERRIDES add flags (a CPU check of this script: BENCH_OVERRIDES="--device cpu --size tiny --steps 2
# --warmup_steps 1 --batch_size 2 --text_length 20 --mel_frames 40 --reference_frames 30" TRAIN_OVERRIDES="--model_size
# tiny --use_cpu true --bf16 false --tf32 false --dataloader_num_workers 0" PARITY_STEPS=4 EVAL_STEPS=2).
set -euo pipefail
source "$(dirname "$0")/parity_runs.sh"
corpus=$1
out=$2
steps=${PARITY_STEPS:-300}
eval_steps=${EVAL_STEPS:-50}
port=${MASTER_PORT:-29533}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cache=${CACHE_DIR:-/tmp/kurdish_tts_cache}
runs=${RUNS_DIR:-/tmp/kurdish_tts_xtts_parity}
# An explicit rendezvous port: torchrun's --standalone (port 0) has been seen to wait forever on some machines.
launch=(torchrun --nproc_per_node 2 --master_addr 127.0.0.1 --master_port "$port")

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpus.csv" 2>&1 || true

# shellcheck disable=SC2206
bench=(benchmarks/bench_xtts.py --sizes small,base --precisions bf16 ${BENCH_OVERRIDES:-})
CUDA_VISIBLE_DEVICES=0 python "${bench[@]}" --out "$out/bench_one_gpu" > "$out/bench_one_gpu.log" 2>&1
"${launch[@]}" "${bench[@]}" --out "$out/bench_two_gpus" > "$out/bench_two_gpus.log" 2>&1

# shellcheck disable=SC2206
train=(scripts/train_xtts.py --data "$corpus" --tokenizer kurmanji --cache_dir "$cache" --model_size small
  --max_steps "$steps" --eval_strategy steps --eval_steps "$eval_steps" --eval_samples 64
  --per_device_eval_batch_size 16 --save_strategy steps --save_steps "$steps" --save_total_limit 1 --logging_steps 10
  --bf16 true --tf32 true --synthesis_metrics "" --dataloader_num_workers 4 --report_to none --disable_tqdm true
  ${TRAIN_OVERRIDES:-})
parity_runs --keys eval_mel eval_loss loss/mel_after

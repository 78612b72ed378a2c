#!/usr/bin/env bash
# Two-GPU measurements of issue 8, in one go (about 8 minutes on 2 x H200):
#   1. throughput: bench_train.py on 1 GPU, on 2 GPUs (DDP through torchrun) with the package's DDP defaults, and on
#      2 GPUs with the unused-parameter search the Trainer would otherwise turn on;
#   2. loss parity: train_vits.py at the same global batch (32) for the same steps on 1 GPU (seeds 0 and 1, run side
#      by side, one per GPU, sharing one held-out split) and on 2 GPUs (16 per GPU, seed 0), then compare_runs.py.
#
#   bash benchmarks/ddp_two_gpus.sh CORPUS OUT
# CORPUS: an LJSpeech-style folder (e.g. `kurdish-tts make-demo-corpus --voices espeak_ku_m1 ...`); OUT: results.
set -euo pipefail
source "$(dirname "$0")/parity_runs.sh"
corpus=$1
out=$2
steps=${PARITY_STEPS:-300}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cache=${CACHE_DIR:-/tmp/kurdish_tts_cache}
runs=${RUNS_DIR:-/tmp/kurdish_tts_parity}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpus.csv"
python scripts/prepare_data.py --data "$corpus" --tokenizer kurmanji --cache_dir "$cache" \
  --preprocessing_num_workers 8 > "$out/prepare.log" 2>&1 &
prepare=$!

bench=(benchmarks/bench_train.py --size mms --batch_sizes 32 --precisions bf16 --steps 40 --warmup 10
  --dataset_batches 64 --pad_to_multiple_of 64 --workers 4 --skip_breakdown)
CUDA_VISIBLE_DEVICES=0 python "${bench[@]}" --out "$out/bench_one_gpu.txt" > "$out/bench_one_gpu.log" 2>&1
torchrun --standalone --nproc_per_node 2 "${bench[@]}" --out "$out/bench_two_gpus.txt" > "$out/bench_two_gpus.log" 2>&1
torchrun --standalone --nproc_per_node 2 "${bench[@]}" --find_unused true --out "$out/bench_two_gpus_find_unused.txt" \
  > "$out/bench_two_gpus_find_unused.log" 2>&1
wait "$prepare"

train=(scripts/train_vits.py --data "$corpus" --tokenizer kurmanji --cache_dir "$cache" --model_size mms
  --max_steps "$steps" --eval_strategy steps --eval_steps 50 --eval_samples 64 --per_device_eval_batch_size 16
  --save_strategy steps --save_steps "$steps" --save_total_limit 1 --logging_steps 10 --bf16 true --tf32 true
  --learning_rate 2e-4 --warmup_steps 0.05 --lr_scheduler_type cosine --synthesis_metrics ""
  --dataloader_num_workers 4 --report_to none --disable_tqdm true)
launch=(torchrun --standalone --nproc_per_node 2)
parity_runs

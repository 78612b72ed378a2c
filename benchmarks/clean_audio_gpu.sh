#!/usr/bin/env bash
# The clean-audio measurement on one GPU, in resumable phases that each fit a 10-minute remote call:
#
#   bash benchmarks/clean_audio_gpu.sh CORPUS FINETUNE_CORPUS RUNS OUT MINUTES [WAIT_SECONDS]
#
# 1. `throughput.txt`: bench_train.py, MMS size, batch 32, bf16, CUDA graphs (once, before anything else runs).
# 2. Two MMS-size runs from random init on CORPUS (one espeak-ng voice), started together on the one GPU (so each
#    gets about half of it): `--duration_predictor deterministic` (RUNS/det) and `stochastic` (RUNS/sto), MINUTES of
#    `--target_hours` each, evaluations with the synthesis metrics and the waveform-health group.
# 3. Each run's held-out sentences synthesized next to their recordings (health, full-band distance, MCD, mel and
#    full-band spectrograms); as soon as RUNS/det is done, the fine-tune: FINETUNE_HOURS (default 5 minutes) from its
#    best model on FINETUNE_CORPUS (another voice, ~120 training clips), and its held-out sentences before and after.
#
# TRAIN_OVERRIDES: extra train_vits.py flags for every run, which win (a CPU check of this script: SKIP_BENCH=1
# TRAIN_OVERRIDES="--model_size tiny --bf16 false --tf32 false --cuda_graphs false --dataloader_num_workers 0
# --dataloader_persistent_workers false --preprocessing_num_workers 1" with small corpora and MINUTES 1).
# Every call starts what is due, waits up to WAIT_SECONDS (default 560) and packs what exists into OUT/*.tar.gz;
# call it again (same arguments) to go on. Nothing is started twice: each step leaves a marker or a summary.
set -uo pipefail
corpus=$1
finetune_corpus=$2
runs=$3
out=$4
minutes=$5
wait_seconds=${6:-560}
mkdir -p "$out" "$runs"
source "$(dirname "$0")/gpu_runs.sh"
hours=$(python -c "print($minutes / 60)")

if [ ! -f "$runs/throughput.txt" ] && [ -z "${SKIP_BENCH:-}" ]; then
  python benchmarks/bench_train.py --cuda_graphs --dataset_batches 32 --skip_breakdown --steps 40 --warmup 10 \
    --batch_sizes 32 --precisions bf16 > "$runs/throughput.txt" 2>&1
  tail -5 "$runs/throughput.txt"
fi

common=(--data "$corpus" --tokenizer kurmanji --model_size mms --target_hours "$hours"
  --per_device_train_batch_size 32 --eval_samples 64 --eval_steps 500 --save_steps 1000 --save_total_limit 2)
start "$runs/det" "${common[@]}" --duration_predictor deterministic
start "$runs/sto" "${common[@]}" --duration_predictor stochastic
wait_for "$runs/det"
if finished "$runs/det"; then
  held_out "$runs/det" "$corpus" "$runs/det_held_out" &
  if [ -d "$runs/det/best_model" ]; then
    start "$runs/finetune" --data "$finetune_corpus" --model_name_or_path "$runs/det/best_model" \
      --target_hours "${FINETUNE_HOURS:-0.08333}" --per_device_train_batch_size 16 --eval_samples 20 \
      --eval_steps 100 --save_steps 200 --save_total_limit 1
  fi
fi
wait_for "$runs/sto"
finished "$runs/sto" && held_out "$runs/sto" "$corpus" "$runs/sto_held_out"
wait_for "$runs/finetune"
if finished "$runs/finetune"; then
  held_out "$runs/finetune" "$finetune_corpus" "$runs/finetune_held_out_before" "$runs/det/best_model" &
  held_out "$runs/finetune" "$finetune_corpus" "$runs/finetune_held_out"
fi
wait

report "$runs/det" "$runs/sto" "$runs/finetune"
pack "$runs" "$out" det sto finetune
cp "$runs/throughput.txt" "$out/" 2>/dev/null
true

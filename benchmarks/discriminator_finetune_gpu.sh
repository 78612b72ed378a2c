#!/usr/bin/env bash
# Does a fine-tune go better from the pretrained model's own discriminator than from a fresh one? (issue 17)
#
#   bash benchmarks/discriminator_finetune_gpu.sh CORPUS FINETUNE_CORPUS RUNS OUT PRETRAIN_MINUTES [WAIT_SECONDS]
#
# 1. RUNS/pretrain: an MMS-size model from random init on CORPUS (one espeak-ng voice), PRETRAIN_MINUTES of
#    `--target_hours`, the whole GPU. Its best model holds `discriminator.safetensors`, as a model that
#    went through `kurdish-tts convert-discriminator` (or MMS's own D_100000.pth) does.
# 2. From that best model, on FINETUNE_CORPUS (another voice, ~120 training clips), two fine-tunes started together
#    on the one GPU, same seed, same data split, same FINETUNE_MINUTES (default 5) of budget:
#    RUNS/own (`--discriminator auto`: the model's own discriminator) and RUNS/fresh (`--discriminator none`).
#    140 clips hold out 14 (a tenth), evaluated in two batches of 7.
# 3. The fine-tune corpus's held-out sentences synthesized by the pretrained model (before) and by both fine-tunes;
#    the loss curves of both side by side (compare_runs.py: OUT/own_vs_fresh.md and .png).
#
# Like clean_audio_gpu.sh, every call starts what is due, waits up to WAIT_SECONDS (default 560) and packs what
# exists into OUT; call it again with the same arguments to go on. TRAIN_OVERRIDES as there, but the model size
# is PRETRAIN_SIZE (a `--model_size` override would make the fine-tunes start from random weights). A CPU check:
# PRETRAIN_SIZE=tiny FINETUNE_MINUTES=1.5 TRAIN_OVERRIDES="--bf16 false --tf32 false --cuda_graphs false
# --dataloader_num_workers 0 --dataloader_persistent_workers false --preprocessing_num_workers 1 --eval_samples 8
# --per_device_train_batch_size 4 --per_device_eval_batch_size 4 --synthesis_metrics_samples 2 --eval_steps 20
# --budget_probe_steps 3 --budget_min_steps 10 --best_model_health_check false", corpora of 40 clips, 1.5 minutes.
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
finetune_hours=$(python -c "print(${FINETUNE_MINUTES:-5} / 60)")

start "$runs/pretrain" --data "$corpus" --tokenizer kurmanji --model_size "${PRETRAIN_SIZE:-mms}" \
  --duration_predictor deterministic \
  --target_hours "$hours" --per_device_train_batch_size 32 --eval_samples 64 --eval_steps 500 --save_steps 1000 \
  --save_total_limit 1
wait_for "$runs/pretrain"
pretrained=$runs/pretrain/best_model
if finished "$runs/pretrain" && [ -d "$pretrained" ]; then
  finetune=(--data "$finetune_corpus" --model_name_or_path "$pretrained" --seed 42 --data_seed 42
    --target_hours "$finetune_hours" --per_device_train_batch_size 16 --eval_samples 20 --eval_steps 100
    --per_device_eval_batch_size 7
    --save_steps 400 --save_total_limit 1)
  start "$runs/own" "${finetune[@]}" --discriminator auto
  start "$runs/fresh" "${finetune[@]}" --discriminator none
elif finished "$runs/pretrain"; then
  echo "the pretraining run ended without a best model (no evaluation passed the health gate): nothing to fine-tune"
fi
wait_for "$runs/own" "$runs/fresh"
if finished "$runs/own" && finished "$runs/fresh"; then
  pack "$runs" "$out" pretrain own fresh  # the runs' records first, in case the call's time runs out below
  held_out "$runs/own" "$finetune_corpus" "$runs/own_held_out_before" "$pretrained" 8 &
  held_out "$runs/own" "$finetune_corpus" "$runs/own_held_out" "" 8 &
  held_out "$runs/fresh" "$finetune_corpus" "$runs/fresh_held_out" "" 8
  wait
  python benchmarks/compare_runs.py "$runs/own" "$runs/fresh" --labels "own discriminator" "fresh discriminator" \
    --keys eval_loss/mel eval_mcd loss/mel loss/disc loss/gen loss/fm --out "$out/own_vs_fresh" > /dev/null \
    || echo "compare_runs.py failed"
fi

report "$runs/pretrain" "$runs/own" "$runs/fresh"
pack "$runs" "$out" pretrain own fresh
true

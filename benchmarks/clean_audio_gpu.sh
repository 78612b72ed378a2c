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
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
began=$SECONDS
hours=$(python -c "print($minutes / 60)")
device=$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')

alive() { [ -f "$1.pid" ] && kill -0 "$(cat "$1.pid")" 2>/dev/null; }
finished() { [ -f "$1/run_summary.json" ]; }
start() {  # start NAME ARGS...: one train_vits.py run in the background, resumed if it has checkpoints
  local run_dir=$1; shift
  finished "$run_dir" && return
  alive "$run_dir" && return
  local resume=()
  compgen -G "$run_dir/checkpoint-*" > /dev/null && resume=(--resume_from_checkpoint last)
  setsid nohup python scripts/train_vits.py --output_dir "$run_dir" --bf16 true --tf32 true \
    --per_device_eval_batch_size 16 --learning_rate 2e-4 --warmup_steps 0.05 --lr_scheduler_type cosine \
    --cuda_graphs true --cuda_graphs_max_shapes 24 --dataloader_drop_last true --eval_strategy steps \
    --logging_steps 50 --synthesis_metrics mcd,duration,rtf,health --synthesis_metrics_samples 8 \
    --dataloader_num_workers 6 --dataloader_persistent_workers true --report_to tensorboard --disable_tqdm true \
    --preprocessing_num_workers 6 "$@" ${TRAIN_OVERRIDES:-} "${resume[@]}" >> "$run_dir.log" 2>&1 &
  echo $! > "$run_dir.pid"
  echo "started $run_dir (pid $(cat "$run_dir.pid")) ${resume[*]}"
}
held_out() {  # held_out RUN_DIR CORPUS OUT_DIR [MODEL_DIR]: synthesize the run's held-out sentences
  local run_dir=$1 data=$2 dest=$3 model=${4:-}
  [ -f "$dest/held_out.md" ] && return
  if [ -z "$model" ]; then
    model=$run_dir/best_model
    if [ ! -d "$model" ]; then  # no evaluation passed the health gate: judge the last checkpoint, and say so
      model=$(ls -d "$run_dir"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
      echo "no best_model in $run_dir (the health gate refused every evaluation); using $model" | tee "$dest.note"
    fi
  fi
  python benchmarks/synthesize_held_out.py "$run_dir" "$data" "$dest" --count 6 --device "$device" \
    --model_dir "$model" > "$dest.log" 2>&1 || echo "held-out synthesis of $run_dir failed: see $dest.log"
}
wait_for() {  # wait_for RUN_DIR...: until each has finished or the call's time is up
  for run_dir in "$@"; do
    while alive "$run_dir" && (( SECONDS - began < wait_seconds )); do sleep 5; done
  done
}

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

echo "after $((SECONDS - began)) s:"
for run_dir in "$runs/det" "$runs/sto" "$runs/finetune"; do
  [ -f "$run_dir.log" ] || continue
  state=running; finished "$run_dir" && state=finished; alive "$run_dir" || finished "$run_dir" || state=stopped
  echo "== $run_dir: $state"; grep -E "loss/disc|eval_health|BestModel|Error|error" "$run_dir.log" | tail -4 | cut -c1-600
done
# One archive per run: the remote command returns a limited number of files.
for name in det sto finetune; do
  run_dir=$runs/$name
  [ -d "$run_dir" ] || continue
  cp "$run_dir.log" "$run_dir/train.log" 2>/dev/null
  files=()
  for file in train.log run_summary.json budget.json plan.md loss_curve.png sample.wav trainer_state.json \
    data_split.json best_model/best_model.json; do
    [ -f "$run_dir/$file" ] && files+=("$name/$file")
  done
  for extra in "${name}_held_out" "${name}_held_out_before"; do [ -d "$runs/$extra" ] && files+=("$extra"); done
  tar -czf "$out/$name.tar.gz" -C "$runs" "${files[@]}" 2>/dev/null
done
cp "$runs/throughput.txt" "$out/" 2>/dev/null
true

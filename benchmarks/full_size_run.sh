#!/usr/bin/env bash
# Issue 8's full-size run: the MMS-size VITS from random init, 20 minutes of `train_vits.py --target_hours` on one GPU,
# on an espeak-ng corpus (one voice), with evaluations (mel loss and MCD of synthesized held-out clips), the loss
# curve and the sample WAV.
#
#   bash benchmarks/full_size_run.sh CORPUS RUN_DIR OUT [WAIT_SECONDS]
#
# Starts the run in the background (or, when RUN_DIR holds checkpoints of an interrupted run and no run is alive,
# resumes it: the budget then deducts what the earlier part spent), waits up to WAIT_SECONDS (default 560) for it to
# finish, and copies what is there to OUT. Call it again to keep waiting: one call fits a remote command's time limit.
# TRAIN_OVERRIDES: extra train_vits.py flags, which win (a CPU check of this script: `--model_size tiny --bf16 false
# --cuda_graphs false --target_hours 0.01 --dataloader_num_workers 0 --dataloader_persistent_workers false`).
set -uo pipefail
corpus=$1
run_dir=$2
out=$3
wait_seconds=${4:-560}
mkdir -p "$out" "$run_dir"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

pid_file="$run_dir.pid"
alive() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

if [ ! -f "$run_dir/run_summary.json" ] && ! alive; then
  resume=()
  if compgen -G "$run_dir/checkpoint-*" > /dev/null; then resume=(--resume_from_checkpoint last); fi
  setsid nohup python scripts/train_vits.py --data "$corpus" --tokenizer kurmanji --model_size mms \
    --output_dir "$run_dir" --target_hours 0.33333 --bf16 true --tf32 true \
    --per_device_train_batch_size 32 --per_device_eval_batch_size 16 --eval_samples 64 \
    --learning_rate 2e-4 --warmup_steps 0.05 --lr_scheduler_type cosine --max_grad_norm 1.0 \
    --cuda_graphs true --cuda_graphs_max_shapes 24 --dataloader_drop_last true \
    --eval_strategy steps --eval_steps 500 --save_strategy steps --save_steps 1000 --save_total_limit 2 \
    --logging_steps 50 --synthesis_metrics mcd,duration,rtf --synthesis_metrics_samples 8 \
    --dataloader_num_workers 8 --dataloader_persistent_workers true --report_to tensorboard --disable_tqdm true \
    ${TRAIN_OVERRIDES:-} "${resume[@]}" >> "$run_dir.log" 2>&1 &
  echo $! > "$pid_file"
  echo "started $(cat "$pid_file") ${resume[*]}"
fi

for ((waited = 0; waited < wait_seconds; waited += 10)); do
  alive || break
  sleep 10
done
alive && echo "still running after ${wait_seconds} s" || echo "finished"
tail -c 3000 "$run_dir.log"
if [ -f "$run_dir/run_summary.json" ] && [ ! -d "$run_dir/held_out" ]; then
  python benchmarks/synthesize_held_out.py "$run_dir" "$corpus" "$run_dir/held_out" --count 6 \
    --device "$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
fi
# One archive: the remote command returns a limited number of files.
names=()
[ -d "$run_dir/held_out" ] && names+=(held_out)
for name in run_summary.json budget.json plan.md loss_curve.png sample.wav trainer_state.json data_split.json; do
  [ -f "$run_dir/$name" ] && names+=("$name")
done
cp "$run_dir.log" "$run_dir/train.log"
tar -czf "$out/full_size_run.tar.gz" -C "$run_dir" train.log "${names[@]}"
true

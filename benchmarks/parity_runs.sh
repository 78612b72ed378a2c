# Loss parity at one global batch, shared by ddp_two_gpus.sh (VITS) and xtts_two_gpus.sh (XTTS); sourced, not run.
#
#   parity_runs [compare_runs.py arguments]
#
# Needs, set by the caller: the arrays `train` (the training script and its flags, without batch size, seed and output
# folder) and `launch` (the two-process launcher), and the folders `runs` and `out`. Trains at a global batch of 32
# for the same steps on 1 GPU (seeds 0 and 1, side by side, one per GPU) and on 2 GPUs x 16 (seed 0), all three on one
# held-out split, then writes `$out/parity.md` and `.png` with compare_runs.py and copies each run's state and summary.
parity_runs() {
  CUDA_VISIBLE_DEVICES=0 python "${train[@]}" --per_device_train_batch_size 32 --seed 0 \
    --output_dir "$runs/one_gpu" > "$out/one_gpu.log" 2>&1 &
  local first=$!
  # The other runs hold out the same clips (the split is drawn from the seed; a saved split is reused).
  until [ -f "$runs/one_gpu/data_split.json" ]; do kill -0 "$first" && sleep 1; done
  mkdir -p "$runs/one_gpu_seed1" "$runs/two_gpus"
  cp "$runs/one_gpu/data_split.json" "$runs/one_gpu_seed1/"
  cp "$runs/one_gpu/data_split.json" "$runs/two_gpus/"
  CUDA_VISIBLE_DEVICES=1 python "${train[@]}" --per_device_train_batch_size 32 --seed 1 \
    --output_dir "$runs/one_gpu_seed1" > "$out/one_gpu_seed1.log" 2>&1
  wait "$first"
  "${launch[@]}" "${train[@]}" --per_device_train_batch_size 16 --seed 0 --output_dir "$runs/two_gpus" \
    > "$out/two_gpus.log" 2>&1

  python benchmarks/compare_runs.py "$runs/one_gpu" "$runs/one_gpu_seed1" "$runs/two_gpus" \
    --labels "1 GPU x 32" "1 GPU x 32, seed 1" "2 GPUs x 16" --noise_pair 0 1 --out "$out/parity" "$@"
  local run
  for run in one_gpu one_gpu_seed1 two_gpus; do
    cp "$runs/$run/trainer_state.json" "$out/${run}_trainer_state.json"
    cp "$runs/$run/run_summary.json" "$out/${run}_run_summary.json" 2>/dev/null || true
  done
}

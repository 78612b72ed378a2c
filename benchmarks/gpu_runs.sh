# Sourced by the GPU measurement scripts (clean_audio_gpu.sh, discriminator_finetune_gpu.sh): background
# train_vits.py runs that survive between remote calls, each resumed from its checkpoints when called again, and the
# held-out synthesis of a finished run. The caller sets `wait_seconds`; `began` (the call's start, for wait_for) and
# `device` are set here.
began=$SECONDS
device=$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

alive() { [ -f "$1.pid" ] && kill -0 "$(cat "$1.pid")" 2>/dev/null; }
finished() { [ -f "$1/run_summary.json" ]; }
start() {  # start RUN_DIR ARGS...: one train_vits.py run in the background, resumed if it has checkpoints
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
held_out() {  # held_out RUN_DIR CORPUS OUT_DIR [MODEL_DIR [COUNT]]: synthesize the run's held-out sentences
  local run_dir=$1 data=$2 dest=$3 model=${4:-} count=${5:-6}
  [ -f "$dest/held_out.md" ] && return
  if [ -z "$model" ]; then
    model=$run_dir/best_model
    if [ ! -d "$model" ]; then  # no evaluation passed the health gate: judge the last checkpoint, and say so
      model=$(ls -d "$run_dir"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
      echo "no best_model in $run_dir (the health gate refused every evaluation); using $model" | tee "$dest.note"
    fi
  fi
  python benchmarks/synthesize_held_out.py "$run_dir" "$data" "$dest" --count "$count" --device "$device" \
    --model_dir "$model" > "$dest.log" 2>&1 || echo "held-out synthesis of $run_dir failed: see $dest.log"
}
wait_for() {  # wait_for RUN_DIR...: until each has finished or the call's time is up
  for run_dir in "$@"; do
    while alive "$run_dir" && (( SECONDS - began < wait_seconds )); do sleep 5; done
  done
}
report() {  # report RUN_DIR...: state and last GAN/health lines of each run
  local run_dir state
  echo "after $((SECONDS - began)) s:"
  for run_dir in "$@"; do
    [ -f "$run_dir.log" ] || continue
    state=running; finished "$run_dir" && state=finished; alive "$run_dir" || finished "$run_dir" || state=stopped
    echo "== $run_dir: $state"; grep -E "loss/disc|eval_health|BestModel|iscriminator|Error|error" "$run_dir.log" \
      | tail -4 | cut -c1-600
  done
}
pack() {  # pack RUNS OUT NAME...: one archive per run (the remote command returns a limited number of files)
  local runs=$1 out=$2 name run_dir file extra files; shift 2
  for name in "$@"; do
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
}

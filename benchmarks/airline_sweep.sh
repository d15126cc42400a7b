#!/usr/bin/env bash
# The recipe sweep behind README's airline table: each line of RECIPES is one `earshot train` run on
# the same split, evaluated on the validation file; one tab-separated line of results per run.
# Meant for a GPU machine (each run takes about a minute on an H100, about ten on two CPU cores).
#
#   benchmarks/airline_sweep.sh TRAIN.csv VALIDATION.csv [PARALLEL_RUNS] > sweep.tsv
#   BASE_MODEL=/path/to/all-mpnet-base-v2 RECIPES=mpnet benchmarks/airline_sweep.sh ...
set -euo pipefail
train=$1
validation=$2
parallel=${3:-4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base="--pain-point-loss-weight 3 --pain-point-ranking-weight 1"
d3="--epochs 3 --patience 2 $base"
minilm_recipes="base $d3
seed1 $d3 --seed 1
seed2 $d3 --seed 2
seed3 $d3 --seed 3
e4 --epochs 4 --patience 4 $base
e5 --epochs 5 --patience 5 $base
e6 --epochs 6 --patience 6 $base
e6lr5 --epochs 6 --patience 6 $base --learning-rate 5e-5
e5lr12 --epochs 5 --patience 5 $base --learning-rate 1.2e-4
lr4 $d3 --learning-rate 4e-5
lr15 $d3 --learning-rate 1.5e-4
bs16 $d3 --batch-size 16
bs16lr5 $d3 --batch-size 16 --learning-rate 5e-5
bs64lr12 $d3 --batch-size 64 --learning-rate 1.2e-4
cwbal $d3 --class-weighting balanced
rank3 $d3 --pain-point-ranking-weight 3
pw6 $d3 --pain-point-loss-weight 6
hlr3e4 $d3 --head-learning-rate 3e-4
hlr3e3 $d3 --head-learning-rate 3e-3
wu15 $d3 --warmup-ratio 0.15"
mpnet_recipes="mp8 $d3
mp4 $d3 --learning-rate 4e-5
mp2 $d3 --learning-rate 2e-5
mp4e5 --epochs 5 --patience 5 $base --learning-rate 4e-5"
case ${RECIPES:-minilm} in
  minilm) recipes=$minilm_recipes ;;
  mpnet) recipes=$mpnet_recipes ;;
  *) echo "RECIPES must be minilm or mpnet, got '${RECIPES}'" >&2; exit 2 ;;
esac

run_one() {  # name, then the training flags
  local name=$1; shift
  local started=$SECONDS
  local columns=(--sentiment-column airline_sentiment --pain-points-column negativereason --none-label "Can't Tell")
  earshot train --data "$train" --validation "$validation" --output "$work/$name" "${columns[@]}" \
    ${BASE_MODEL:+--base-model "$BASE_MODEL"} --no-progress "$@" > "$work/$name.log" 2>&1 \
    && earshot evaluate --model "$work/$name" --data "$validation" "${columns[@]}" >> "$work/$name.log" 2>&1 \
    || { echo -e "$name\tFAILED (log: $work/$name.log)"; return; }
  python3 - "$work/$name/metrics.json" "$name" "$((SECONDS - started))" "$*" <<'PY'
import json, sys
heads = json.load(open(sys.argv[1]))["heads"]
sentiment, pain = heads["sentiment"], heads["pain_points"]
print(f"{sys.argv[2]}\t{sentiment['accuracy']:.4f}\t{sentiment['macro_f1']:.4f}\t{pain['top1_accuracy']:.4f}"
      f"\t{pain['micro_f1']:.4f}\t{sys.argv[3]}s\t{sys.argv[4]}", flush=True)
PY
  rm -rf "${work:?}/$name"
}
export -f run_one
export train validation work

echo -e "name\tsentiment_accuracy\tsentiment_macro_f1\tpain_top1\tpain_micro_f1\tseconds\tflags"
echo "$recipes" | xargs -P "$parallel" -L 1 bash -c 'run_one "$@"' _

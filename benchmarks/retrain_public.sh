#!/usr/bin/env bash
# Retrains earshot on the three other public datasets with flags only (no code change) and evaluates
# each on data it did not train on.
# Usage: benchmarks/retrain_public.sh [SHARED_DATA_DIR] [OUT_DIR] [tuned|defaults] [DATASET ...]
#   tuned:    the epochs and losses chosen by hand (docs/experiments.md)
#   defaults: the data's column flags only, every training setting left at its default
#   DATASET:  banking77, semeval, mams (default: all three)
set -euo pipefail
data=${1:-../shared/data}
out=${2:-runs}
mode=${3:-tuned}
shift $(( $# < 3 ? $# : 3 ))
datasets=("${@:-banking77 semeval mams}")
case "$mode" in
  tuned)
    banking77_flags=(--epochs 15 --patience 3)
    semeval_flags=(--epochs 20 --patience 3 --pain-point-ranking-weight 1)
    mams_flags=(--epochs 10 --patience 3) ;;
  defaults)
    banking77_flags=(); semeval_flags=(); mams_flags=() ;;
  *) echo "mode must be tuned or defaults, not '$mode'" >&2; exit 2 ;;
esac
mkdir -p "$out/splits"

for dataset in ${datasets[@]}; do
  case "$dataset" in
    banking77)
      # 77 intents, one per row, no sentiment.
      earshot split "$data/banking77/train.csv" --train-output "$out/splits/banking77-train.csv" \
        --test-output "$out/splits/banking77-validation.csv" --test-fraction 0.1 --stratify-column category
      earshot train --data "$out/splits/banking77-train.csv" --validation "$out/splits/banking77-validation.csv" \
        --output "$out/banking77-$mode" --pain-points-column category --no-progress \
        ${banking77_flags[@]+"${banking77_flags[@]}"}
      earshot evaluate --data "$out/splits/banking77-validation.csv" --model "$out/banking77-$mode" \
        --pain-points-column category ;;
    semeval)
      # SemEval-2016 restaurants: aspect categories as pain points; sentiment only where all opinions agree.
      earshot split "$data/semeval2016_restaurants/train.csv" --train-output "$out/splits/semeval-train.csv" \
        --test-output "$out/splits/semeval-validation.csv" --test-fraction 0.15 --stratify-column sentiment
      earshot train --data "$out/splits/semeval-train.csv" --validation "$out/splits/semeval-validation.csv" \
        --output "$out/semeval-$mode" --pain-points-column topics --sentiment-column sentiment --no-progress \
        ${semeval_flags[@]+"${semeval_flags[@]}"}
      earshot evaluate --data "$out/splits/semeval-validation.csv" --model "$out/semeval-$mode" \
        --pain-points-column topics --sentiment-column sentiment ;;
    mams)
      # Multi-aspect sentences, negatively mentioned aspects as pain points, no sentiment; own validation file.
      earshot train --data "$data/mams/train.csv" --validation "$data/mams/validation.csv" \
        --output "$out/mams-$mode" --pain-points-column pain_points --no-progress ${mams_flags[@]+"${mams_flags[@]}"}
      earshot evaluate --data "$data/mams/validation.csv" --model "$out/mams-$mode" --pain-points-column pain_points ;;
    *) echo "unknown dataset '$dataset': banking77, semeval or mams" >&2; exit 2 ;;
  esac
done

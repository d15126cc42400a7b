#!/usr/bin/env bash
# Retrains earshot on the three other public datasets with flags only (no code change) and evaluates
# each on data it did not train on. Usage: benchmarks/retrain_public.sh [SHARED_DATA_DIR] [OUT_DIR]
set -euo pipefail
data=${1:-../shared/data}
out=${2:-runs}
mkdir -p "$out/splits"

# Banking77: 77 intents, one per row, no sentiment.
earshot split "$data/banking77/train.csv" --train-output "$out/splits/banking77-train.csv" \
  --test-output "$out/splits/banking77-validation.csv" --test-fraction 0.1 --stratify-column category
earshot train --data "$out/splits/banking77-train.csv" --validation "$out/splits/banking77-validation.csv" \
  --output "$out/banking77" --pain-points-column category --epochs 15 --patience 3 --no-progress
earshot evaluate --data "$out/splits/banking77-validation.csv" --model "$out/banking77" --pain-points-column category

# SemEval-2016 restaurants: aspect categories as pain points; sentiment only where all opinions agree.
earshot split "$data/semeval2016_restaurants/train.csv" --train-output "$out/splits/semeval-train.csv" \
  --test-output "$out/splits/semeval-validation.csv" --test-fraction 0.15 --stratify-column sentiment
earshot train --data "$out/splits/semeval-train.csv" --validation "$out/splits/semeval-validation.csv" \
  --output "$out/semeval" --pain-points-column topics --sentiment-column sentiment --epochs 20 --patience 3 \
  --pain-point-ranking-weight 1 --no-progress
earshot evaluate --data "$out/splits/semeval-validation.csv" --model "$out/semeval" \
  --pain-points-column topics --sentiment-column sentiment

# MAMS: multi-aspect sentences, negatively mentioned aspects as pain points, no sentiment; own validation file.
earshot train --data "$data/mams/train.csv" --validation "$data/mams/validation.csv" --output "$out/mams" \
  --pain-points-column pain_points --epochs 10 --patience 3 --no-progress
earshot evaluate --data "$data/mams/validation.csv" --model "$out/mams" --pain-points-column pain_points

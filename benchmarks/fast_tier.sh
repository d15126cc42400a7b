#!/usr/bin/env bash
# The fast tier: students of the default model that keep N of its layers, distilled on the airline
# tweets (the default model's own split), then their speed and quality beside the default model's.
#
#   benchmarks/fast_tier.sh [AIRLINE_CSV] [OUT] [LAYERS...]      e.g. benchmarks/fast_tier.sh ../shared/data/airline/train.csv runs/fast 3 2
#   EMBEDDING_WEIGHT=1 benchmarks/fast_tier.sh ...                 also pull the students' text vectors to the teacher's
#   DISTILL_FLAGS="--hidden-weight 1 --learning-rate 1e-5 --head-learning-rate 5e-5" \
#     benchmarks/fast_tier.sh ../shared/data/airline/train.csv runs/fast 5      the best 5-layer student recorded
# A layer set such as 1,3,4,5,6 (numbers from 1) keeps those layers instead of the first N.
set -euo pipefail
DATA=${1:-../shared/data/airline/train.csv}
OUT=${2:-runs/fast}
shift $(( $# < 2 ? $# : 2 ))
LAYERS=${*:-3 2}
EARSHOT=${EARSHOT:-earshot}
mkdir -p "$OUT"
"$EARSHOT" split "$DATA" --train-output "$OUT/train.csv" --test-output "$OUT/validation.csv" --test-fraction 0.1 \
  --stratify-column airline_sentiment --stratify-column negativereason --seed 13
students=()
for n in $LAYERS; do
  name=student-${n//,/-}
  students+=("$OUT/$name")
  /usr/bin/time -v "$EARSHOT" distill --teacher model/default --data "$OUT/train.csv" --validation "$OUT/validation.csv" \
    --sentiment-column airline_sentiment --pain-points-column negativereason --none-label "Can't Tell" \
    --student-layers "$n" --epochs "${EPOCHS:-4}" --patience 2 --pain-point-loss-weight 3 --pain-point-ranking-weight 1 \
    --threshold-shrinkage 100 ${EMBEDDING_WEIGHT:+--embedding-weight "$EMBEDDING_WEIGHT"} ${DISTILL_FLAGS:-} \
    --label "fast, layers $n" --output "$OUT/$name" --no-progress 2> "$OUT/$name.log"
  grep -E "done in|Maximum resident" "$OUT/$name.log"
done
python benchmarks/inference.py --texts 2000 --quality-data "$OUT/validation.csv" --fast "${students[@]}" \
  | tee "$OUT/inference.txt"

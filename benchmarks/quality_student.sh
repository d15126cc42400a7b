#!/usr/bin/env bash
# The quality student (the recipe of the shipped default model): an all-mpnet-base-v2 teacher trained on
# the airline tweets (the default model's own split, seed 13), then a MiniLM-L6 student of it (`earshot
# distill --student-base`, 6 epochs), each with the default model's flags; both are then scored on the
# validation split (fp32 torch). Each step's wall-clock time and peak memory go to OUT/*.log.
#
#   benchmarks/quality_student.sh [AIRLINE_CSV] [OUT] [EPOCHS]      e.g. benchmarks/quality_student.sh ../shared/data/airline/train.csv runs/quality 6
set -euo pipefail
DATA=${1:-../shared/data/airline/train.csv}
OUT=${2:-runs/quality}
EPOCHS=${3:-6}
EARSHOT=${EARSHOT:-earshot}
COLUMNS=(--sentiment-column airline_sentiment --pain-points-column negativereason --none-label "Can't Tell")
FLAGS=(--pain-point-loss-weight 3 --pain-point-ranking-weight 1 --threshold-shrinkage 100 --no-progress)
mkdir -p "$OUT"
"$EARSHOT" split "$DATA" --train-output "$OUT/train.csv" --test-output "$OUT/validation.csv" --test-fraction 0.1 \
  --stratify-column airline_sentiment --stratify-column negativereason --seed 13
if [ ! -f "$OUT/teacher/model.safetensors" ]; then
  /usr/bin/time -v "$EARSHOT" train --data "$OUT/train.csv" --validation "$OUT/validation.csv" "${COLUMNS[@]}" \
    --base-model sentence-transformers/all-mpnet-base-v2 --learning-rate 4e-5 --epochs 3 --patience 2 "${FLAGS[@]}" \
    --label "teacher, all-mpnet-base-v2" --output "$OUT/teacher" 2> "$OUT/teacher.log"
fi
grep -E "done in|Maximum resident" "$OUT/teacher.log"
/usr/bin/time -v "$EARSHOT" distill --teacher "$OUT/teacher" --data "$OUT/train.csv" --validation "$OUT/validation.csv" \
  "${COLUMNS[@]}" --student-base sentence-transformers/all-MiniLM-L6-v2 --epochs "$EPOCHS" --patience 2 "${FLAGS[@]}" \
  ${EMBEDDING_WEIGHT:+--embedding-weight "$EMBEDDING_WEIGHT"} --label "MiniLM-L6 student of all-mpnet-base-v2" \
  --output "$OUT/student" 2> "$OUT/student.log"
grep -E "done in|Maximum resident" "$OUT/student.log"
for model in teacher student; do
  "$EARSHOT" evaluate --model "$OUT/$model" --data "$OUT/validation.csv" "${COLUMNS[@]}" --backend torch --no-model-card \
    --output "$OUT/$model-evaluation" > /dev/null
  python - "$OUT/$model-evaluation/metrics.json" "$model" <<'PY'
import json, sys
heads = json.load(open(sys.argv[1]))["heads"]
print(f"{sys.argv[2]}: sentiment accuracy {heads['sentiment']['accuracy']:.4f}, macro-F1 {heads['sentiment']['macro_f1']:.4f}; "
      f"pain-point top-1 {heads['pain_points']['top1_accuracy']:.4f}, micro-F1 {heads['pain_points']['micro_f1']:.4f}")
PY
done

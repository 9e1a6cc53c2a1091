#!/usr/bin/env bash
# The distillation study of docs/results.md (issue 14) as one prepared script for a GPU machine (16 cores), wheels
# carried as for scripts/gpu_bench.sh. Usage: scripts/gpu_study.sh WORKDIR OUTDIR [SECONDS]
#   1. ablation on the validation split: variants x 4 modalities x 2 seeds (python -m kd_components.tools.ablation)
#   2. the variant ranked first on validation (the tool's stated rule), baseline and it with 3 seeds, on the test split
#      (seeds 0 and 1 reuse the ablation's trained models; nothing from test feeds back into the choice)
#   3. the demo's sizes, T1c, 3 seeds, on validation: the default (tumour_balanced) and the chosen variant
# Each part is bounded by `timeout`, so a slow machine returns what finished; OUTDIR gets the tables, logs and a tar
# of every evaluation (metrics only, no weights).
set -uo pipefail
cd "$(dirname "$0")/.."
W=${1:?work dir}; OUT=${2:?output dir}; BUDGET=${3:-400}
mkdir -p "$W" "$OUT"
source scripts/gpu_env.sh
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
bounded() {  # bounded SECONDS CMD...: run CMD for at most SECONDS, or skip it when there is no time left
    local t=$1; shift
    if (( t > 10 )); then timeout "$t" "$@"; else echo "skipped, no time left: $*"; fi
}
JOBS=${STUDY_JOBS:-14}
SIZES=${STUDY_SIZES:---num-cases 40 --teacher-epochs 10 --student-epochs 6}
MODS=${STUDY_MODALITIES:-all}
STUDY=(--output "$W/study" $SIZES --jobs "$JOBS")
VARIANTS=${STUDY_VARIANTS:-tumour_balanced,voxel_mean,voxel_mean_wt_half,voxel_mean_t1,voxel_mean_t4,voxel_mean_feat_off,voxel_mean_feat_l2,class_kl,voxel_mean_long_teacher}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/machine.txt" 2>&1 || true
nproc >> "$OUT/machine.txt"
echo "== 1. ablation on validation ($(left) s left)"
bounded $(( $(left) * 60 / 100 )) "$PY" -m kd_components.tools.ablation "${STUDY[@]}" --modalities "$MODS" --seeds 2 \
    --variants "$VARIANTS" --split validation ${STUDY_EXTRA:-}
"$PY" -m kd_components.tools.ablation "${STUDY[@]}" --modalities "$MODS" --seeds 2 --variants "$VARIANTS" \
    --split validation --summarise-only ${STUDY_EXTRA:-}
cp "$W/study/ablation_validation.md" "$W/study/ablation_validation.json" "$OUT/" 2>/dev/null
CHOSEN=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['ranked'][0])" "$W/study/ablation_validation.json")
echo "chosen on validation: $CHOSEN"
echo "== 2. test split, 3 seeds: baseline and $CHOSEN ($(left) s left)"
bounded $(( $(left) * 70 / 100 )) "$PY" -m kd_components.tools.ablation "${STUDY[@]}" --modalities "$MODS" --seeds 3 \
    --variants "$CHOSEN" --split test ${STUDY_EXTRA:-}
"$PY" -m kd_components.tools.ablation "${STUDY[@]}" --modalities "$MODS" --seeds 3 --variants "$CHOSEN" --split test \
    --summarise-only ${STUDY_EXTRA:-}
cp "$W/study/ablation_test.md" "$W/study/ablation_test.json" "$OUT/" 2>/dev/null
echo "== 3. demo sizes, T1c, 3 seeds, validation ($(left) s left)"
bounded $(( $(left) - 15 )) "$PY" -m kd_components.tools.ablation --output "$W/demo_check" --jobs "$JOBS" \
    --modalities t1ce --seeds 3 --variants "tumour_balanced,$CHOSEN" --split validation ${DEMO_EXTRA:-}
"$PY" -m kd_components.tools.ablation --output "$W/demo_check" --modalities t1ce --seeds 3 \
    --variants "tumour_balanced,$CHOSEN" --split validation --summarise-only ${DEMO_EXTRA:-}
cp "$W/demo_check/ablation_validation.md" "$OUT/demo_check_validation.md" 2>/dev/null
cp "$W/demo_check/ablation_validation.json" "$OUT/demo_check_validation.json" 2>/dev/null
(cd "$W" && tar czf "$OUT/evaluations.tgz" --exclude='*.pt' --exclude='*.nii.gz' --exclude='events.out*' \
    --exclude='data' study demo_check 2>/dev/null)
echo "== done in $(( $(date +%s) - START )) s"

#!/usr/bin/env bash
# The real-data study of docs/results.md ("Real BraTS 2018 cases") at 1 mm and 2 mm, as one prepared script for a
# GPU machine (wheels carried as for scripts/gpu_bench.sh). The 42 cases (about 350 MB) must be on that machine:
# `scripts/get_brats2018_public42.sh DIR` where it reaches GitHub, then
#     scripts/gpu_real_study.sh DIR/cases WORKDIR OUTDIR [SECONDS]
# For each resolution (REAL_PIXDIMS, default "1 2"; 1 mm is the images' own grid: no resampling): the teacher, then
# the T1c and FLAIR students (baseline and KD, the phantom's recipe voxel_mean) with REAL_SEEDS seeds (default 2),
# trained on the committed split's 26 training cases, chosen on its 6 validation cases, scored on its 10 test cases
# at 1 mm. Crops: REAL_ROI_1 (default 128^3) at 1 mm, REAL_ROI_2 (default 96^3) at 2 mm. Each resolution is bounded
# by `timeout` (half of SECONDS each, default 600), so a short lease returns what finished; OUTDIR gets the tables
# and a tar of every evaluation and validation record (no weights). Stages whose outputs exist are reused, so a second
# lease continues the first.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?the folder of the 42 case folders}; W=${2:?work dir}; OUT=${3:?output dir}; BUDGET=${4:-600}
mkdir -p "$W" "$OUT"
if [[ -d wheels ]]; then source scripts/gpu_env.sh; fi  # a CPU toy run needs no wheels
PY=${PYTHON:-python3}
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/machine.txt" 2>&1 || true
PIXDIMS=${REAL_PIXDIMS:-1 2}
n=$(wc -w <<< "$PIXDIMS")
for mm in $PIXDIMS; do
    roi_var=REAL_ROI_$mm; roi=${!roi_var:-$([[ $mm == 1 ]] && echo "128 128 128" || echo "96 96 96")}
    args=(--output "$W/real_${mm}mm" --data-dir "$DATA" --split-file brats2018_public42 --roi $roi
          --modalities t1ce,flair --seeds "${REAL_SEEDS:-2}" --variants voxel_mean --split test
          --jobs "${REAL_JOBS:-4}" --teacher-epochs "${REAL_TEACHER_EPOCHS:-100}"
          --student-epochs "${REAL_STUDENT_EPOCHS:-100}" --val-interval "${REAL_VAL_INTERVAL:-5}")
    [[ $mm == 1 ]] || args+=(--pixdim "$mm")
    budget=$(( $(left) / n )); n=$(( n - 1 ))
    echo "== ${mm} mm, ${budget} s: python -m kd_components.tools.ablation ${args[*]}"
    (( budget > 30 )) && timeout "$budget" "$PY" -m kd_components.tools.ablation "${args[@]}"
    "$PY" -m kd_components.tools.ablation "${args[@]}" --summarise-only
    cp "$W/real_${mm}mm/ablation_test.md" "$OUT/real_${mm}mm_test.md" 2>/dev/null
    cp "$W/real_${mm}mm/ablation_test.json" "$OUT/real_${mm}mm_test.json" 2>/dev/null
done
(cd "$W" && tar czf "$OUT/evaluations.tgz" --exclude='*.pt' --exclude='*.nii.gz' --exclude='events.out*' \
    --exclude='*.npz' real_*mm 2>/dev/null)
echo "== done in $(( $(date +%s) - START )) s"

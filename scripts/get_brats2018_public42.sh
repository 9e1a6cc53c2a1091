#!/usr/bin/env bash
# The 42 BraTS 2018 training cases that are public in two GitHub repositories, as one folder of case folders
# (2018-2021 layout, 240x240x155 at 1 mm, labels 0/1/2/4), for the real-data study (docs/results.md, "Real BraTS
# 2018 cases") and the tests that use real cases (KD_BRATS2018_DIR).
#     scripts/get_brats2018_public42.sh DEST
# writes DEST/DeepBrainSeg/ and DEST/BioExp/ (sparse checkouts of the case folders only, at the commits below) and
# DEST/cases/<CASE> -> the case folder (42 links); `python -m kd_components.data datalist --data-dir DEST/cases
# --split-file brats2018_public42 --output ...` then gives the committed split. About 350 MB.
#   koriavinash1/DeepBrainSeg 5d4f381, sample_volume/brats/ (20 cases; its sample_volume/valid/ repeats four of them
#       without labels and is not taken)
#   koriavinash1/BioExp c0a88e7, sample_vol/brats/ (22 cases; each folder's extra mask.nii.gz is not a BraTS file and
#       is ignored by the datalist)
# BraTS challenge data, research use only: cite Menze et al. 2015 (IEEE TMI 34(10)), Bakas et al. 2017 (Sci Data 4),
# Bakas et al. 2018 (arXiv 1811.02629). Never commit the scans. GIT_BASE (default https://github.com) may point at
# mirrors: GIT_BASE/koriavinash1/DeepBrainSeg(.git).
set -euo pipefail
DEST=${1:?usage: $0 DEST}
BASE=${GIT_BASE:-https://github.com}
mkdir -p "$DEST/cases"
get() {  # repo commit folder
    local name=${1#*/}
    if [[ ! -d "$DEST/$name/.git" ]]; then
        git clone --quiet --filter=blob:none --no-checkout "$BASE/$1" "$DEST/$name"
    fi
    git -C "$DEST/$name" sparse-checkout set --no-cone "/$3/"
    git -C "$DEST/$name" checkout --quiet "$2"
    for case in "$DEST/$name/$3"/*/; do
        case=${case%/}
        ln -sfn "$(cd "$case" && pwd)" "$DEST/cases/$(basename "$case")"
    done
}
get koriavinash1/DeepBrainSeg 5d4f381 sample_volume/brats
get koriavinash1/BioExp c0a88e7 sample_vol/brats
n=$(find "$DEST/cases" -maxdepth 1 -type l | wc -l)
echo "$n case folders in $DEST/cases"
[[ "$n" == 42 ]] || { echo "error: expected 42 case folders in $DEST/cases, found $n" >&2; exit 1; }

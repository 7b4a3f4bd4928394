#!/usr/bin/env bash
# Composition study on the 40 nuScenes-lidarseg keyframes of ../shared/realdata (docs/study.md).
#
#   benchmarks/study_nuscenes.sh [WORK_DIR] [SEEDS]
#
# Steps: tune an hdl-32 sensor-effect preset on the training stretch (data0-27), render 72 frames with it,
# build a reference bank of the training stretch with nuScenes ids rolled onto the taxonomy's head classes
# (the renderer labels vehicle/ground/building; the bank must know those names), gate the renders, and run
# `simgap study` (test stretch: data30-39; data28-29 dropped). Every step is seeded; the study is resumable
# (rerun the script to continue it).
set -euo pipefail
WORK=${1:-/tmp/simgap_study}
SEEDS=${2:-3}
REAL=${SIMGAP_REALDATA:-../shared/realdata}/nuscenes_lidarseg_cascol
PY=${PYTHON:-python}
simgap() { "$PY" -m simgap_ext.cli "$@"; }
mkdir -p "$WORK/real_train"
for i in $(seq 0 27); do ln -sfn "$(realpath "$REAL/data$i")" "$WORK/real_train/data$i"; done

[ -f "$WORK/tuned_hdl32.toml" ] || simgap tune --real "$WORK/real_train" --sensor hdl-32 --out "$WORK/tuned_hdl32.toml" \
    --limit 12 --no-search --device cpu --no-progress
[ -d "$WORK/synth_all" ] || simgap render --sensor hdl-32 --preset "$WORK/tuned_hdl32.toml" --frames 72 --seed 1000 \
    --device cpu --out "$WORK/synth_all" --no-progress
"$PY" - "$WORK/nuscenes_head.yaml" <<'EOF'
import re, sys
from simgap_ext.config import config_dir
from simgap_ext.data.taxonomy import head_of
out = []
for line in open(config_dir() / "label_maps" / "nuscenes.yaml"):
    m = re.match(r'(\s+\d+: \[".*", )(\w+)(\])', line)
    if m and m.group(2) != "unlabeled":
        line = f"{m.group(1)}{head_of(m.group(2))}{m.group(3)}\n"
    out.append(line.replace("name: nuscenes", "name: nuscenes_head"))
open(sys.argv[1], "w").write("".join(out))
EOF
[ -f "$WORK/bank_head.npz" ] || simgap reference build --real "$WORK/real_train" --label-map "$WORK/nuscenes_head.yaml" \
    --sensor hdl-32 --out "$WORK/bank_head.npz" --device cpu
# The default scene threshold (0.75) accepts none of the 72 renders (scene G 0.57-0.70); 0.64 is their median.
printf '[gate]\nscene_threshold = 0.64\n' > "$WORK/gate_study.toml"
[ -f "$WORK/synth_gated/manifest.jsonl" ] || simgap gate --bank "$WORK/bank_head.npz" --gate-config "$WORK/gate_study.toml" \
    --synthetic "$WORK/synth_all" --out "$WORK/synth_gated" --device cpu --no-progress --json "$WORK/gate.json" | tail -1
RESUME=()
[ -f "$WORK/study_nuscenes/study.json" ] && RESUME=(--resume)
simgap study --real "$REAL" --synthetic "$WORK/synth_gated" --ungated "$WORK/synth_all" \
    --ratios 100:0,75:25,50:50,25:75,0:100 --seeds "$SEEDS" --train-size 8 --epochs 3 --width 128 --max-points 16384 \
    --sensor hdl-32 --out "$WORK/study_nuscenes" "${RESUME[@]}"

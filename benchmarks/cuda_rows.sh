#!/usr/bin/env bash
# Every CUDA path of SimGap in one run, for a machine with an NVIDIA GPU (CI has none):
#   1. the device-parametrised tests on cuda:0 (nearest neighbours and Chamfer against brute force, the ray cast,
#      the scene source, the gate's frame statistics);
#   2. bench_chamfer.py with simgap-cuda against a chunked torch.cdist on the GPU and the KD-trees on this CPU;
#   3. bench_render.py on cuda:0 and cpu;
#   4. bench_gate.py on cuda:0 and cpu (the gate alone), then the generation loop on cuda:0.
# Usage: OUT=logs REALDATA=../shared/realdata bash benchmarks/cuda_rows.sh   (python3 must import warp and torch)
# Each step has its own time limit, so one that hangs or fails does not cost the others; logs go to $OUT.
set -u
OUT=${OUT:-cuda_out}
REALDATA=${REALDATA:-../shared/realdata}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS CMD...: run CMD with a time limit, its output in $OUT/NAME.log and on stdout
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%T), limit ${limit}s)"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - t0)) s"
    tail -n "${TAIL:-40}" "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import warp as wp, numpy, torch; wp.init(); print('warp', wp.config.version, wp.get_devices(), \
'numpy', numpy.__version__, 'torch', torch.__version__)" 2>&1 | tee -a "$OUT/gpu.txt"

TAIL=15 step tests 110 $PY -m pytest -q -p no:cacheprovider -k "cuda" tests/test_metrics_nn.py \
    tests/test_backend_raycast.py tests/test_backend_source.py tests/test_gate_frame_stats.py -rfE
TAIL=20 step chamfer 150 $PY benchmarks/bench_chamfer.py --ours simgap-cuda --realdata "$REALDATA" \
    --contenders simgap-cuda torch-cuda pykdtree ckdtree simgap --pairs consecutive drives render uniform \
    --sizes 16384 full 1048576 --rounds 5 --rounds-1m 3 --no-memory --json "$OUT/chamfer.json"
TAIL=10 step chamfer_mem 60 $PY benchmarks/bench_chamfer.py --ours simgap-cuda --realdata "$REALDATA" \
    --contenders simgap-cuda torch-cuda pykdtree ckdtree --pairs consecutive uniform --sizes full 1048576 --rounds 1
TAIL=12 step render 50 $PY benchmarks/bench_render.py --devices cuda:0 cpu --sensors os1-128 hdl-64 \
    --presets realistic --frames 10
TAIL=12 step gate_cuda 50 $PY benchmarks/bench_gate.py --device cuda:0 --sensors os1-128 --bank-frames 6 --frames 6
TAIL=12 step gate_cpu 50 $PY benchmarks/bench_gate.py --device cpu --sensors os1-128 --bank-frames 6 --frames 6
TAIL=12 step generate_cuda 60 $PY benchmarks/bench_gate.py --generate --device cuda:0 --sensors os1-128 \
    --bank-frames 6 --frames 6 --rounds 1

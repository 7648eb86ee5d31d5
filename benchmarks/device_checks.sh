#!/usr/bin/env bash
# The figures only a GPU can give, in one short run on a lent device (about 5 minutes on one
# H100): CEM plan latency for the tiny and the ViT-L-width predictor in bf16 (issue 6's
# <= 50 ms target) and training throughput, TFLOP/s and MFU of both phases at ViT-L / ViT-H
# size in bf16. Every check runs under its own time limit and a failed one does not stop the
# others; the tables go to stdout and the JSON to $OUT (default runs/bench/device).
#
#   make device-deps                         # once, here: tqdm and PyYAML into .device_deps
#   bash benchmarks/device_checks.sh         # there, with .device_deps carried along
#   DEVICE=cpu bash benchmarks/device_checks.sh   # a dry run of every step at tiny sizes
#
# The device has PyTorch, timm and torchvision but no registry to install from; the two
# pure-Python packages the library imports beside them travel in .device_deps in case timm's
# installation did not bring them.
set -uo pipefail

cd "$(dirname "$0")/.."
out=${OUT:-runs/bench/device}
device=${DEVICE:-cuda}
python=${PYTHON:-python}
limit=${CHECK_TIMEOUT_S:-150}
export PYTHONPATH="platform:.${PYTHONPATH:+:$PYTHONPATH}"
# timm's own dependencies usually bring both; the carried copies are the fallback.
if ! "$python" -c 'import tqdm, yaml' 2>/dev/null; then
    export PYTHONPATH="$PYTHONPATH:.device_deps"
fi
mkdir -p "$out"

if [[ $device == cpu ]]; then
    planner=(--sizes tiny --device cpu --dtype fp32 --repeats 1 --no-naive)
    big_planner=()
    throughput=(--device cpu --precision fp32 --steps 1 --warmup 0 --set train.batch_size=2)
else
    planner=(--sizes tiny --device "$device" --dtype bf16)
    # The naive loop at ViT-L width is ~100k separate forwards: minutes, for a ratio the tiny
    # row already gives.
    big_planner=(--sizes vit_l --device "$device" --dtype bf16 --no-naive)
    throughput=(--pretrain-preset vit_l --dynamics-preset vit_h --device "$device"
        --precision bf16 --steps 10 --warmup 3 --set train.batch_size=8)
fi

failed=0
check() {  # name, then the command
    local name=$1
    shift
    echo "== $name"
    if ! timeout "$limit" "$@"; then
        echo "!! $name failed or ran past ${limit}s"
        failed=$((failed + 1))
    fi
}

check environment "$python" -c '
import sys, torch, timm, tqdm, yaml
print("python", sys.version.split()[0], "torch", torch.__version__, "timm", timm.__version__)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu only")
'
check planner "$python" benchmarks/planner.py "${planner[@]}" --out "$out/planner.json"
if ((${#big_planner[@]})); then
    check planner_vit_l "$python" benchmarks/planner.py "${big_planner[@]}" \
        --out "$out/planner_vit_l.json"
fi
check train_throughput "$python" benchmarks/train_throughput.py "${throughput[@]}" \
    --out "$out/train_throughput.json"
echo "== done: $failed check(s) failed; JSON in $out"
exit $((failed > 0))

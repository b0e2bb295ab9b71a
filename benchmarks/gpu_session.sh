#!/usr/bin/env bash
# The GPU measurements in one call of the device tool each (an H100/H200 machine of this workplace: torch, numpy,
# OpenCV, pandas, safetensors, PyYAML, tqdm and matplotlib in its image, no registry).
#
#   here, once:   benchmarks/fetch_device_wheels.sh
#   device run:   command "bash benchmarks/gpu_session.sh speed", carry [".whl"], timeout_s 600
#                 then, if device time is left, "bash benchmarks/gpu_session.sh loso" and "... au" the same way
#
# speed (9 min at most): bench_model.py's GPU rows (official-small, bf16, batch 64 and 256, eager and compiled,
#                      FLOP/s, speed-up over the straightforward reference, host reads per training step) and
#                      bench_pretrain.py's GPU throughput rows (official-small at 224, bf16, batch 256, compiled; pairs
#                      from the decoded-frame cache and from a frame store; data-only against model-only samples/s and
#                      model FLOP utilisation against the GPU's bf16 peak).
# loso (9 min at most): bench_loso.py on the GPU: a CASME II-sized LOSO with official-small, frozen (head; DMA +
#                      head) and in finetune mode (encoder trained, 2 epochs per fold).
# au (9 min at most):  bench_pretrain.py's AU experiment with official-small at 224 on the GPU (10 training faces,
#                      8 held out, residual decoder and volatility head, as FINDINGS §12 asks next).
# Not yet run on a GPU. Each stage has its own time limit, so a slow stage still leaves the others' results;
# result files and logs are copied to $OUT (the device tool brings them back) and stay in benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:-speed}
out=${OUT:-/tmp/gpu_session_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:$PWD/src
else
    export PYTHONPATH=$PWD/src
fi
python3 -c "import torch, micronbert; assert torch.cuda.is_available(), 'no GPU'; print(torch.__version__, \
torch.cuda.get_device_name(0), 'micronbert', micronbert.__version__)" || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null

run() {  # run LIMIT_SECONDS NAME COMMAND...: one stage, its log kept in $out
    local limit=$1 name=$2
    shift 2
    echo "== $name (at most ${limit} s): $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    echo "== $name exit ${PIPESTATUS[0]}"
}

case $stage in
    speed)
        run 330 bench_model python3 benchmarks/bench_model.py --quick --skip-cpu
        run 210 bench_pretrain_throughput python3 benchmarks/bench_pretrain.py --skip-cpu --skip-au --compile \
            --workers 12 --gpu-batch 256 --gpu-steps 20 --store
        ;;
    loso)
        run 540 bench_loso python3 benchmarks/bench_loso.py --device cuda --finetune-epochs 2
        ;;
    au)
        run 540 bench_pretrain_au python3 benchmarks/bench_pretrain.py --skip-throughput --au-model official-small \
            --au-device cuda --au-steps 1500 --faces 10 8 --set decoder_residual=true --set volatility_weight=1
        ;;
    *)
        echo "usage: gpu_session.sh speed|loso|au" >&2
        exit 2
        ;;
esac
cp benchmarks/results/*_gpu_* "$out/" 2>/dev/null
ls -l "$out"

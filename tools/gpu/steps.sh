#!/usr/bin/env bash
# The steps of a GPU session for issue 10, one device call each, run from the repo root with .gpu/
# (tools/gpu/prepare.sh) carried. State lives in /tmp/gpu and $S7 while the machine stays warm.
#   setup                 unpack node and onnxruntime, install the Vulkan loader (.gl/*.deb)
#   standin               the 7B stand-in (tools/standin-7b/make_standin.py) in $S7
#   chunk                 move the carried .gpu-cuda/* pieces to /tmp/gpu/cuda
#   cuda-lib              reassemble the CUDA provider libraries next to libonnxruntime.so.1
#   subset N              /tmp/gpu/sub-N.csv: every (807/N)-th row of the starter kit's test.csv
#   cli NAME PROVIDER DTYPE QUANT DATA CACHE BATCH [FLAGS...]   one whole CLI run (report in reports/)
#   peer NAME BATCH DATA  transformers eager bf16 peer (tools/standin-7b/peer_transformers.py)
#   check PROVIDER        packages/mistral-onnx/bench/provider-check.ts (fp32/fp16 vs CPU)
#   bg STEP...            run steps (separated by ';' inside one quoted argument) detached
#   tail                  show the logs' ends;  collect: copy reports and logs to $OUT
set -uo pipefail
cd "$(dirname "$0")/../.."
W=/tmp/gpu
# The device keeps only what a call carries: setup copies the carried .gpu/ out of the checkout.
G=$W/g
S7=${S7:-/tmp/s7}
mkdir -p $W/logs $W/reports $W/cuda
LIB=$G/node_modules/onnxruntime-node/bin/napi-v6/linux/x64
NODE=$W/node
OUT=${OUT:-$W/out}
SP=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)
CUDA_LIBS=$(find "$SP/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="${CUDA_LIBS}${LD_LIBRARY_PATH:-}"
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
step=${1:-}; shift || true
case "$step" in
setup)
  mkdir -p $G
  [ -x $NODE ] || { xz -dc .gpu/node.xz > $NODE && chmod +x $NODE; }
  [ -f $G/cli.mjs ] || xz -dc .gpu/payload.tar.xz | tar -xf - -C $G
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
  { nvidia-smi; nproc; free -g; df -h /tmp; $NODE --version; python3 -c 'import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)'; } 2>&1 | tee $W/reports/machine.txt
  ;;
standin)
  [ -f $S7/base/model.safetensors.index.json ] ||
    python3 tools/standin-7b/make_standin.py --out $S7 --mistral-tokenizer-js $G/mistral-tokenizer.js 2>&1 | tail -4
  du -sh $S7/base
  ;;
chunk)
  mv .gpu-cuda/* $W/cuda/ 2>/dev/null; ls -la $W/cuda
  ;;
cuda-lib)
  # Reassembled, then installed by the package's own installer (which also checks they load).
  mkdir -p $W/cuda/lib
  cat $W/cuda/cuda.xz.part* | xz -d > $W/cuda/lib/libonnxruntime_providers_cuda.so &&
    xz -dc $W/cuda/libonnxruntime_providers_shared.so.xz > $W/cuda/lib/libonnxruntime_providers_shared.so
  sha256sum $W/cuda/lib/*.so
  $NODE $G/enable-cuda.mjs $W/cuda/lib 2>&1 | tee $W/logs/enable-cuda.log
  ;;
subset)
  python3 - "$G/test.csv" "$1" "$W/sub-$1.csv" <<'PY'
import csv, sys
src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(src, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
    fields = list(rows[0].keys())
step = len(rows) / n
keep = [rows[int(i * step)] for i in range(n)]
with open(dst, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(keep)
print(dst, len(keep), "rows:", sum(r["eval_type"] == "generation" for r in keep), "generation")
PY
  ;;
cli)
  name=$1 provider=$2 dtype=$3 quant=$4 data=$5 cache=$6 batch=$7; shift 7
  [ -f "$data" ] || data=$G/$(basename "$data")
  extra=""
  for kv in "$@"; do extra="$extra
  ${kv%%=*}: ${kv#*=}"; done
  cat > $W/$name.yaml <<YAML
base: $S7/base
experts: [$S7/experts/*]
data: $data
out: $W/out-$name/test.csv
strategy: { method: lift_routing }
runtime:
  dtype: $dtype
  executionProvider: $provider
  weightQuant: $quant
  generationBatchSize: $batch
  maxNewTokens: 64
  choiceScore: sum
  choiceTokenization: separate
  cacheDir: $cache$extra
hub: { offline: true }
budgetSeconds: 3600
YAML
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > $W/logs/$name.gpumem 2>/dev/null &
  smi=$!
  t0=$(date +%s.%N)
  $NODE $G/cli.mjs --config $W/$name.yaml --no-progress 2>&1 | tee $W/logs/$name.log
  rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  kill $smi 2>/dev/null
  peak=$(sort -n $W/logs/$name.gpumem | tail -1)
  echo "{\"name\":\"$name\",\"rc\":$rc,\"wallSeconds\":$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}"),\"peakGpuMemMiB\":${peak:-null},\"config\":\"$W/$name.yaml\"}" | tee $W/reports/7b-$name.run.json
  cp $W/out-$name/report.json $W/reports/7b-$name.report.json 2>/dev/null
  cp $W/$name.yaml $W/reports/7b-$name.yaml
  ;;
peer)
  name=$1 batch=$2 data=$3; shift 3
  [ -f "$data" ] || data=$G/$(basename "$data")
  python3 tools/standin-7b/peer_transformers.py --base $S7/base \
    --experts $S7/experts/expert-1 $S7/experts/expert-2 $S7/experts/expert-3 \
    $S7/experts/expert-4 $S7/experts/expert-5 --data "$data" --batch-size "$batch" \
    --device cuda --report $W/reports/peer-$name.json --out $W/out-peer-$name.csv "$@" 2>&1 |
    tee $W/logs/peer-$name.log
  ;;
check)
  $NODE $G/provider-check.mjs "$1" data/zoo/base $W/reports/provider-check-$1.json 2>&1 | tee $W/logs/check-$1.log
  ;;
bg)
  setsid nohup bash -c "$(printf 'bash tools/gpu/steps.sh %s; ' "$@")" > $W/logs/bg.log 2>&1 < /dev/null &
  echo "started in the background: $*"
  ;;
tail)
  for f in $W/logs/*.log; do echo "== $f"; tail -n 4 "$f"; done
  ;;
collect)
  tar czf "$OUT/gpu.tgz" -C $W logs reports 2>/dev/null
  for f in $W/reports/*.run.json; do cat "$f"; done
  ls -la "$OUT"
  ;;
*) echo "unknown step '$step'"; exit 2 ;;
esac

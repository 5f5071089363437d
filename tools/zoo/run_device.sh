#!/usr/bin/env bash
# Runs tools/zoo/train.py on the device machine and packs its outputs into $OUT (at most 8 files of 16 MiB).
# Usage (through the device tool, carrying .whl with the peft wheel): bash tools/zoo/run_device.sh [train.py args...]
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/peft-*.whl && export PYTHONPATH=/tmp/site || exit 1
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
rm -rf /tmp/zoo && mkdir -p /tmp/zoo
timeout 570 python3 tools/zoo/train.py --out /tmp/zoo "$@" 2>&1 | grep -v -E "Loading weights|Writing model shards" | tee "$OUT/train_stdout.txt"
echo "train rc ${PIPESTATUS[0]}"
tar -C /tmp/zoo -cf /tmp/zoo.tar . && split -b 15m -d /tmp/zoo.tar "$OUT/zoo.tar.part-"
ls -la "$OUT"

#!/usr/bin/env python3
"""Checks a stand-in made by make_standin.py with transformers and PEFT.

Usage: verify_standin.py DIR [--forward]
Always: config.json loads as MistralConfig; the index's tensor names, shapes and dtypes equal
MistralForCausalLM's state_dict (built on the meta device, no memory); each expert's tensors are
the ones PEFT would create for that config. With --forward (small --layers stand-ins only: it
loads the whole model in fp32): a forward pass is finite, and PEFT loads every expert on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--forward", action="store_true")
    args = ap.parse_args(argv)
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, MistralForCausalLM

    base = Path(args.dir) / "base"
    cfg = AutoConfig.from_pretrained(base)
    with torch.device("meta"):
        model = MistralForCausalLM(cfg)
    want = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    index = json.loads((base / "model.safetensors.index.json").read_text())
    got = {}
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(base / shard, "pt") as f:
            for k in f.keys():
                s = f.get_slice(k)
                got[k] = (tuple(s.get_shape()), s.get_dtype())
                assert index["weight_map"][k] == shard, k
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    bad_shape = [k for k in want if k in got and want[k][0] != got[k][0]]
    bad_dtype = [k for k in got if got[k][1] != "BF16"]
    print(f"base: {len(got)} tensors; missing {missing[:3]} extra {extra[:3]} "
          f"bad shape {bad_shape[:3]} not bf16 {bad_dtype[:3]}")
    ok = not (missing or extra or bad_shape or bad_dtype)
    total = sum((base / s).stat().st_size for s in set(index["weight_map"].values()))
    print(f"base: {len(set(index['weight_map'].values()))} shards, {total / 1e9:.3f} GB on disk, "
          f"index total_size {index['metadata']['total_size'] / 1e9:.3f} GB")

    if args.forward:
        model = MistralForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
        ids = torch.tensor([[1, 22557, 1526, 28808]]) % cfg.vocab_size
        with torch.no_grad():
            logits = model(ids).logits
        finite = bool(torch.isfinite(logits).all())
        print(f"forward: logits {tuple(logits.shape)} finite={finite} std={logits.std():.3f}")
        ok &= finite
    experts = sorted((Path(args.dir) / "experts").glob("expert-*"))
    for d in experts:
        conf = json.loads((d / "adapter_config.json").read_text())
        with safe_open(d / "adapter_model.safetensors", "pt") as f:
            names = list(f.keys())
            dtypes = {f.get_slice(k).get_dtype() for k in names}
        size = (d / "adapter_model.safetensors").stat().st_size
        line = f"{d.name}: r={conf['r']} alpha={conf['lora_alpha']} {len(names)} tensors {dtypes} {size / 1e6:.2f} MB"
        if args.forward:
            from peft import PeftModel

            pm = PeftModel.from_pretrained(model, d)
            with torch.no_grad():
                out = pm(ids).logits
            line += f"; PEFT loads it, logits finite={bool(torch.isfinite(out).all())}"
            ok &= bool(torch.isfinite(out).all())
            model = pm.unload()
        print(line)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

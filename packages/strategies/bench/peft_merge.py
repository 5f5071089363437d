"""PEFT baseline for bench.ts: add_weighted_adapter on the same synthetic factors.

    python peft_merge.py FILE LAYERS EXPERTS RANK ALPHA COMBINATION THREADS DENSITY

Builds a model with Mistral-7B's LoRA target shapes on the meta device, materialises it
uninitialised (base weights are never touched, so they cost no resident memory), loads the
experts' factors from FILE (layout in shapes.ts), times add_weighted_adapter and prints one JSON
line with the wall time and the process's peak RSS.
"""

import json
import resource
import sys
import time

import numpy as np
import torch
from torch import nn

from peft import LoraConfig, get_peft_model

MODULES = [
    ("self_attn.q_proj", 4096, 4096),
    ("self_attn.k_proj", 1024, 4096),
    ("self_attn.v_proj", 1024, 4096),
    ("self_attn.o_proj", 4096, 4096),
    ("mlp.gate_proj", 14336, 4096),
    ("mlp.up_proj", 14336, 4096),
    ("mlp.down_proj", 4096, 14336),
]

file, layers, experts, rank, alpha, combination, threads, density = sys.argv[1:9]
layers, experts, rank, alpha, threads = int(layers), int(experts), int(rank), float(alpha), int(threads)
density = float(density)
torch.set_num_threads(threads)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = nn.Module()
        self.mlp = nn.Module()
        for name, out, inn in MODULES:
            parent, child = name.split(".")
            setattr(getattr(self, parent), child, nn.Linear(inn, out, bias=False, device="meta"))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList([Layer() for _ in range(layers)])

    def forward(self, x):
        return x


names = [f"e{i}" for i in range(experts)]
cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=[n.split(".")[1] for n, _, _ in MODULES])
pm = get_peft_model(Model(), cfg, adapter_name=names[0])
for n in names[1:]:
    pm.add_adapter(n, cfg)
pm.to_empty(device="cpu")

data = np.memmap(file, dtype="<f4", mode="r")
off = 0
for layer in range(layers):
    for name, out, inn in MODULES:
        lyr = pm.get_submodule(f"base_model.model.model.layers.{layer}.{name}")
        for e in names:
            a = torch.from_numpy(np.array(data[off : off + rank * inn])).reshape(rank, inn)
            off += rank * inn
            b = torch.from_numpy(np.array(data[off : off + out * rank])).reshape(out, rank)
            off += out * rank
            lyr.lora_A[e].weight.data.copy_(a)
            lyr.lora_B[e].weight.data.copy_(b)

kwargs = {}
if combination.endswith("svd"):
    # Reduced SVD is PEFT's faster option (its default, full_matrices=True, also forms the
    # out×out U); we give the baseline the faster one.
    kwargs["svd_full_matrices"] = False
if combination not in ("linear", "cat", "svd"):
    kwargs["density"] = density
torch.manual_seed(0)
start = time.perf_counter()
cpu_start = time.process_time()
pm.add_weighted_adapter(names, [1.0] * experts, "merged", combination_type=combination, **kwargs)
seconds = time.perf_counter() - start
cpu_seconds = time.process_time() - cpu_start
print(
    json.dumps(
        {
            "side": "peft",
            "strategy": combination,
            "seconds": seconds,
            "mergeSeconds": seconds,
            "cpuSeconds": cpu_seconds,
            "maxRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": threads,
        }
    )
)

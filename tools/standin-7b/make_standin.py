#!/usr/bin/env python3
"""Make a Mistral-7B-v0.1 stand-in: the real config and tokenizer, random bf16 weights.

Writes, under --out:
  base/                 config.json, generation_config.json, sharded safetensors in the Hub layout
                        (model-0000K-of-0000N.safetensors + model.safetensors.index.json),
                        tokenizer.json, tokenizer_config.json, special_tokens_map.json
  experts/expert-K/     five random PEFT LoRA adapters shaped like the predibase experts in
                        configs/mistral-7b.yaml (r=8, alpha=16, q_proj+v_proj, fp32)

The weights are random (seeded) and small (normal std 0.02, RMSNorm weights 1.0) so activations
stay finite: the stand-in behaves like the real model for speed and memory, not for quality.
Weights are generated and written one tensor at a time (a streaming safetensors writer), so
memory stays at about one tensor (the largest is 32000 x 4096 bf16, 262 MB) however many layers.

The tokenizer is Mistral's own: the vocabulary and merges come from the npm package
mistral-tokenizer-js (installed into a temporary folder with npm unless --mistral-tokenizer-js
names its mistral-tokenizer.js) and are rebuilt as a `tokenizers` BPE in the layout of
Mistral-7B-v0.1's tokenizer.json (byte fallback, ▁ for spaces, a prepended ▁, <unk>/<s>/</s>).
check_tokenizer.py compares it with mistral-tokenizer-js's own encoder.

Needs torch; tokenizers for the tokenizer; peft is used for adapter_config.json when present.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MISTRAL_7B_CONFIG = {
    "architectures": ["MistralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mistral",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.34.0.dev0",
    "use_cache": True,
    "vocab_size": 32000,
}

# The five experts of configs/mistral-7b.yaml (names only; the weights here are random).
EXPERT_SOURCES = [
    "predibase/magicoder",
    "predibase/conllpp",
    "predibase/cnn",
    "predibase/agnews_explained",
    "predibase/gsm8k",
]
LORA_R = 8
LORA_ALPHA = 16
LORA_TARGETS = ["q_proj", "v_proj"]

MISTRAL_TOKENIZER_JS_VERSION = "1.0.0"


# ---------------------------------------------------------------------------------------------
# sizes and names


def parse_size(text: str) -> int:
    """'5GB' -> 5_000_000_000, '4GiB' -> 4 * 2**30, '123' -> 123 (transformers' convention)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?i?B?)\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 5GB, 500MB, 4GiB)")
    value, unit = float(m.group(1)), m.group(2).upper()
    powers = {"": 1, "B": 1}
    for i, p in enumerate("KMGT", start=1):
        powers[p] = powers[p + "B"] = 1000**i
        powers[p + "I"] = powers[p + "IB"] = 1024**i
    if unit not in powers:
        raise argparse.ArgumentTypeError(f"unknown size unit in {text!r}")
    return int(value * powers[unit])


def model_config(args: argparse.Namespace) -> dict:
    cfg = dict(MISTRAL_7B_CONFIG)
    cfg["num_hidden_layers"] = args.layers
    if args.vocab_size is not None:
        cfg["vocab_size"] = args.vocab_size
    if args.hidden_size is not None:
        # Keep head_dim 128 and Mistral's 4:1 grouped-query ratio.
        if args.hidden_size % (4 * cfg["head_dim"]):
            sys.exit(f"--hidden-size must be a multiple of {4 * cfg['head_dim']}")
        cfg["hidden_size"] = args.hidden_size
        cfg["num_attention_heads"] = args.hidden_size // cfg["head_dim"]
        cfg["num_key_value_heads"] = cfg["num_attention_heads"] // 4
    if args.intermediate_size is not None:
        cfg["intermediate_size"] = args.intermediate_size
    return cfg


def tensor_specs(cfg: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, init) in MistralForCausalLM.state_dict() order, as save_pretrained names them."""
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    specs = [("model.embed_tokens.weight", (v, h), "normal")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        specs += [
            (p + "self_attn.q_proj.weight", (q, h), "normal"),
            (p + "self_attn.k_proj.weight", (kv, h), "normal"),
            (p + "self_attn.v_proj.weight", (kv, h), "normal"),
            (p + "self_attn.o_proj.weight", (h, q), "normal"),
            (p + "mlp.gate_proj.weight", (inter, h), "normal"),
            (p + "mlp.up_proj.weight", (inter, h), "normal"),
            (p + "mlp.down_proj.weight", (h, inter), "normal"),
            (p + "input_layernorm.weight", (h,), "ones"),
            (p + "post_attention_layernorm.weight", (h,), "ones"),
        ]
    specs += [("model.norm.weight", (h,), "ones"), ("lm_head.weight", (v, h), "normal")]
    return specs


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def tensor_seed(seed: int, name: str) -> int:
    """Each tensor's own seed: its values do not depend on layer count, order or sharding."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


# ---------------------------------------------------------------------------------------------
# streaming safetensors writer (header first: every shape is known up front)

ST_DTYPE = {"bfloat16": ("BF16", 2), "float32": ("F32", 4)}


def write_safetensors_streaming(path: Path, specs, dtype: str, make_tensor, metadata=None) -> int:
    """Writes `specs` [(name, shape, ...)] with tensors from make_tensor(spec); returns bytes."""
    import torch

    st_dtype, size = ST_DTYPE[dtype]
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, shape, *_ in specs:
        nbytes = numel(shape) * size
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for spec in specs:
            t = make_tensor(spec).to(getattr(torch, dtype)).contiguous()
            assert tuple(t.shape) == tuple(spec[1]), (spec[0], t.shape)
            # bf16 has no numpy dtype: write its bits through int16.
            f.write(t.view(torch.int16 if size == 2 else torch.int32).numpy().tobytes())
    os.replace(tmp, path)
    return path.stat().st_size


def base_tensor(seed: int, std: float):
    import torch

    def make(spec):
        name, shape, init = spec
        if init == "ones":
            return torch.ones(shape, dtype=torch.float32)
        g = torch.Generator().manual_seed(tensor_seed(seed, name))
        return torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=g)

    return make


def shard(specs, shard_bytes: int):
    """transformers' greedy split: start a new shard when the next tensor would overflow this one."""
    shards, current, current_size = [], [], 0
    for spec in specs:
        nbytes = numel(spec[1]) * 2
        if current and current_size + nbytes > shard_bytes:
            shards.append(current)
            current, current_size = [], 0
        current.append(spec)
        current_size += nbytes
    if current:
        shards.append(current)
    return shards


def write_base(base: Path, cfg: dict, seed: int, shard_bytes: int, std: float) -> None:
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    gen = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
           "transformers_version": cfg["transformers_version"]}
    (base / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True) + "\n")
    specs = tensor_specs(cfg)
    shards = shard(specs, shard_bytes)
    n = len(shards)
    weight_map, total = {}, 0
    make = base_tensor(seed, std)
    for k, part in enumerate(shards, start=1):
        fname = f"model-{k:05d}-of-{n:05d}.safetensors"
        t0 = time.time()
        size = write_safetensors_streaming(base / fname, part, "bfloat16", make, {"format": "pt"})
        print(f"  {fname}: {len(part)} tensors, {size / 1e9:.2f} GB, {time.time() - t0:.1f}s", flush=True)
        for name, shape, _ in part:
            weight_map[name] = fname
            total += numel(shape) * 2
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (base / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# LoRA experts


def lora_specs(cfg: dict):
    h = cfg["hidden_size"]
    out = {"q_proj": cfg["num_attention_heads"] * cfg["head_dim"],
           "v_proj": cfg["num_key_value_heads"] * cfg["head_dim"]}
    specs = []
    for i in range(cfg["num_hidden_layers"]):
        for mod in LORA_TARGETS:
            p = f"base_model.model.model.layers.{i}.self_attn.{mod}."
            specs.append((p + "lora_A.weight", (LORA_R, h), "lora_A"))
            specs.append((p + "lora_B.weight", (out[mod], LORA_R), "lora_B"))
    return specs


def adapter_config(base_path: str, source: str) -> dict:
    try:
        from peft import LoraConfig

        lc = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=LORA_TARGETS,
                        lora_dropout=0.05, bias="none", task_type="CAUSAL_LM",
                        base_model_name_or_path=base_path)
        cfg = lc.to_dict()
        # as save_pretrained writes it: sets become sorted lists, enums their values
        for k, v in list(cfg.items()):
            if isinstance(v, set):
                cfg[k] = sorted(v)
            elif hasattr(v, "value"):
                cfg[k] = v.value
    except ImportError:
        cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": LORA_R, "lora_alpha": LORA_ALPHA,
               "lora_dropout": 0.05, "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
               "init_lora_weights": True, "modules_to_save": None, "rank_pattern": {},
               "alpha_pattern": {}, "target_modules": LORA_TARGETS, "use_rslora": False,
               "use_dora": False, "base_model_name_or_path": base_path}
    cfg["inference_mode"] = True
    cfg["base_model_name_or_path"] = base_path
    cfg["revision"] = None
    return cfg


def write_experts(experts: Path, base: Path, cfg: dict, seed: int) -> None:
    import torch

    specs = lora_specs(cfg)
    for k, source in enumerate(EXPERT_SOURCES, start=1):
        d = experts / f"expert-{k}"
        d.mkdir(parents=True, exist_ok=True)
        conf = adapter_config(str(base.resolve()), source)
        (d / "adapter_config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")

        def make(spec, k=k):
            name, shape, kind = spec
            g = torch.Generator().manual_seed(tensor_seed(seed * 1000 + k, name))
            # Kaiming-like A (as PEFT initialises it) and a small nonzero B: the delta
            # B @ A * alpha / r has entries ~1e-3, like a trained adapter, not zero.
            std = 1.0 / (shape[1] ** 0.5) if kind == "lora_A" else 0.01
            return torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=g)

        # What this random adapter stands in for goes in the safetensors metadata, not in
        # adapter_config.json (PEFT warns about keys it does not know).
        size = write_safetensors_streaming(d / "adapter_model.safetensors", specs, "float32", make,
                                           {"format": "pt", "standin_for": source})
        print(f"  expert-{k} ({source}): {len(specs)} tensors, {size / 1e6:.1f} MB", flush=True)


# ---------------------------------------------------------------------------------------------
# tokenizer


def find_mistral_tokenizer_js(explicit: str | None, workdir: Path) -> Path:
    if explicit:
        p = Path(explicit)
        p = p / "mistral-tokenizer.js" if p.is_dir() else p
        if not p.is_file():
            sys.exit(f"--mistral-tokenizer-js: {p} not found")
        return p
    env = os.environ.get("MISTRAL_TOKENIZER_JS")
    if env and Path(env).is_file():
        return Path(env)
    npm = shutil.which("npm")
    if not npm:
        sys.exit("npm not found: install mistral-tokenizer-js yourself and pass --mistral-tokenizer-js")
    print(f"  npm install mistral-tokenizer-js@{MISTRAL_TOKENIZER_JS_VERSION} into {workdir}", flush=True)
    subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(workdir),
                    f"mistral-tokenizer-js@{MISTRAL_TOKENIZER_JS_VERSION}"],
                   check=True, stdout=subprocess.DEVNULL)
    return workdir / "node_modules" / "mistral-tokenizer-js" / "mistral-tokenizer.js"


def read_mistral_vocab(js_path: Path) -> tuple[list[str], list[tuple[int, int]]]:
    """The vocabulary and merges that mistral-tokenizer-js bakes into its source.

    vocab_base64: base64 of the utf-8 tokens joined by '\\n' (line number = token id).
    merges_binary: base64 of little-endian uint16 token ids, two per merge, in priority order.
    """
    src = js_path.read_text(encoding="utf-8")
    blobs = {}
    for name in ("vocab_base64", "merges_binary"):
        m = re.search(r"const\s+%s\s*=\s*\"([A-Za-z0-9+/=]*)\"" % name, src)
        if not m:
            sys.exit(f"{js_path}: no `const {name} = \"...\"` (a different mistral-tokenizer-js?)")
        blobs[name] = base64.b64decode(m.group(1))
    vocab = blobs["vocab_base64"].decode("utf-8").split("\n")
    raw = blobs["merges_binary"]
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [(ids[i], ids[i + 1]) for i in range(0, len(ids) - 1, 2)]
    if len(vocab) != 32000 or len(set(vocab)) != len(vocab) or vocab[:3] != ["<unk>", "<s>", "</s>"]:
        sys.exit(f"{js_path}: unexpected vocabulary ({len(vocab)} tokens)")
    return vocab, merges


def tokenizer_json(vocab: list[str], merges: list[tuple[int, int]]) -> dict:
    """Mistral-7B-v0.1's tokenizer.json layout (the Llama-style SentencePiece BPE conversion)."""
    special = [(0, "<unk>"), (1, "<s>"), (2, "</s>")]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, t in special
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(vocab)},
            "merges": [[vocab[a], vocab[b]] for a, b in merges],
        },
    }


TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "added_tokens_decoder": {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for i, t in [(0, "<unk>"), (1, "<s>"), (2, "</s>")]
    },
    "additional_special_tokens": [],
    "bos_token": "<s>",
    "clean_up_tokenization_spaces": False,
    "eos_token": "</s>",
    "legacy": True,
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": None,
    "sp_model_kwargs": {},
    "spaces_between_special_tokens": False,
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>",
    "use_default_system_prompt": False,
}

SPECIAL_TOKENS_MAP = {
    "bos_token": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
    "eos_token": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
    "unk_token": {"content": "<unk>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
}


def write_tokenizer(base: Path, js_path: Path) -> None:
    vocab, merges = read_mistral_vocab(js_path)
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False, indent=2)
    (base / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
    (base / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP, indent=2) + "\n")
    print(f"  tokenizer.json: {len(vocab)} tokens, {len(merges)} merges (from {js_path})", flush=True)


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (gets base/ and experts/)")
    ap.add_argument("--layers", type=int, default=32, help="decoder layers (default 32, as Mistral-7B)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-size", type=parse_size, default=parse_size("10GB"),
                    help="max shard size, transformers' units (default 10GB: the Hub's 2 shards of "
                         "Mistral-7B-v0.1; 5GB gives 3 shards)")
    ap.add_argument("--std", type=float, default=0.02, help="normal std of the weight matrices")
    ap.add_argument("--vocab-size", type=int, help="for tests: shrink the vocabulary (drops the tokenizer)")
    ap.add_argument("--hidden-size", type=int, help="for tests: shrink hidden_size (heads follow, head_dim 128)")
    ap.add_argument("--intermediate-size", type=int, help="for tests: shrink the MLP")
    ap.add_argument("--no-experts", action="store_true")
    ap.add_argument("--no-tokenizer", action="store_true")
    ap.add_argument("--mistral-tokenizer-js", help="path to mistral-tokenizer.js (or its package folder)")
    args = ap.parse_args(argv)
    if args.layers < 1:
        sys.exit("--layers must be >= 1")

    out = Path(args.out)
    base, experts = out / "base", out / "experts"
    cfg = model_config(args)
    t0 = time.time()
    print(f"base -> {base} ({cfg['num_hidden_layers']} layers)", flush=True)
    write_base(base, cfg, args.seed, args.shard_size, args.std)
    if args.no_tokenizer:
        pass
    elif cfg["vocab_size"] != 32000:
        print(f"  no tokenizer: --vocab-size {cfg['vocab_size']} is not Mistral's 32000", flush=True)
    else:
        with tempfile.TemporaryDirectory(prefix="mistral-tokenizer-js-") as tmp:
            write_tokenizer(base, find_mistral_tokenizer_js(args.mistral_tokenizer_js, Path(tmp)))
    if not args.no_experts:
        print(f"experts -> {experts}", flush=True)
        write_experts(experts, base, cfg, args.seed)
    print(f"done in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()

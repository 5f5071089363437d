"""Step 2 (GPU, minutes): pretrain the base, fine-tune 8 LoRA experts, score everything, write artifacts.

    python3 tools/zoo/train.py --out /tmp/zoo            # on the device (see tools/zoo/run_device.sh)
    .venv/bin/python tools/zoo/train.py --out /tmp/zoo --smoke   # seconds on a CPU: tiny sizes, checks the plumbing

Reads the tokenizer and eval CSVs written by build_data.py from data/zoo/. Writes under --out:
base/ (config.json, BF16 safetensors shards + index), experts/<name>/ (PEFT adapters), results.json
(accuracy of the base, each expert and the PEFT baseline merges on every family), train_log.txt.

Scoring protocol (the same one the TypeScript runner uses): multiple choice = argmax over choices of the
summed log-prob of ALL the choice's tokens given the prompt (prompt encoded with BOS, the choice encoded
alone without special tokens, ids concatenated); generation = greedy decoding until </s> (at most 32
new tokens), decoded without special tokens, exact match after strip.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from build_data import GENERATOR_SEED, GENERATOR_VERSION, ZOO, seed_for  # noqa: E402
from families import EXPERTS, FAMILIES, HELD_IN, HELD_OUT, WORDS  # noqa: E402
from kb import filler_paragraph, forms_paragraph, kb_paragraph  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

BOS, EOS, PAD = 1, 2, 2
MAX_LEN = 128
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

LOG: list[str] = []
T0 = time.time()


def log(msg: str) -> None:
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    print(line, flush=True)
    LOG.append(line)


def model_config(vocab_size: int, smoke: bool) -> dict:
    """Mistral-7B-v0.1's config.json layout, scaled down; rope_theta top-level as the classic configs have it."""
    return {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "vocab_size": vocab_size,
        "hidden_size": 64 if smoke else 256,
        "intermediate_size": 176 if smoke else 704,
        "num_hidden_layers": 2 if smoke else 6,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 8 if smoke else 32,
        "hidden_act": "silu",
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "use_cache": True,
        "torch_dtype": "bfloat16",
    }


# ------------------------------------------------------------------ data
class Encoded:
    """Right-padded token rows on the device: ids [N, MAX_LEN], length [N], first labelled position [N]."""

    def __init__(self, rows: list[tuple[list[int], int]], device: str) -> None:
        rows = [(ids[:MAX_LEN], start) for ids, start in rows]
        self.ids = torch.full((len(rows), MAX_LEN), PAD, dtype=torch.long)
        for i, (ids, _) in enumerate(rows):
            self.ids[i, : len(ids)] = torch.tensor(ids)
        self.ids = self.ids.to(device)
        self.length = torch.tensor([len(r[0]) for r in rows], device=device)
        self.start = torch.tensor([r[1] for r in rows], device=device)

    def __len__(self) -> int:
        return self.ids.shape[0]


def encode_docs(tok: Tokenizer, texts: list[str]) -> list[tuple[list[int], int]]:
    return [(e.ids + [EOS], 1) for e in tok.encode_batch(texts)]


def encode_tasks(tok: Tokenizer, pairs: list[tuple[str, str]], answer_only: bool) -> list[tuple[list[int], int]]:
    """prompt (with BOS) + answer (alone, no specials) + EOS: the exact id layout the scorer uses."""
    prompts = tok.encode_batch([p for p, _ in pairs])
    answers = tok.encode_batch([a for _, a in pairs], add_special_tokens=False)
    return [(p.ids + a.ids + [EOS], len(p.ids) if answer_only else 1) for p, a in zip(prompts, answers)]


def family_pairs(family: str, n: int, purpose: str, exclude: set[str]) -> list[tuple[str, str]]:
    rng = random.Random(seed_for(purpose, family))
    gen = FAMILIES[family]
    out = []
    while len(out) < n:
        e = gen(rng)
        if e.prompt not in exclude:
            out.append((e.prompt, e.answer))
    return out


def sample_batch(sources: list[Encoded], weights: list[float], bs: int, g: torch.Generator, device: str):
    counts = torch.multinomial(torch.tensor(weights), bs, replacement=True, generator=g).bincount(minlength=len(sources))
    ids, labels = [], []
    for src, c in zip(sources, counts.tolist()):
        if c == 0:
            continue
        idx = torch.randint(len(src), (c,), generator=g).to(device)
        x = src.ids[idx]
        pos = torch.arange(MAX_LEN, device=device)[None, :]
        keep = (pos >= src.start[idx][:, None]) & (pos < src.length[idx][:, None])
        ids.append(x)
        labels.append(torch.where(keep, x, torch.full_like(x, -100)))
    ids_t, labels_t = torch.cat(ids), torch.cat(labels)
    width = int((labels_t != -100).any(0).nonzero().max().item()) + 1
    return ids_t[:, :width], labels_t[:, :width]


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train_loop(model, params, sources, weights, steps, bs, peak_lr, warmup, seed, device, tag, wd=0.0):
    opt = torch.optim.AdamW(params, lr=peak_lr, betas=(0.9, 0.95), weight_decay=wd, fused=device == "cuda")
    g = torch.Generator().manual_seed(seed)
    model.train()
    t = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, peak_lr, warmup)
        ids, labels = sample_batch(sources, weights, bs, g, device)
        with torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            log(f"{tag} step {step}/{steps} loss {loss.item():.4f} ({time.time() - t:.1f}s)")
    model.eval()


# ------------------------------------------------------------------ scoring
def read_eval(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@torch.no_grad()
def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids).logits.float()


@torch.no_grad()
def score_mc(model, tok: Tokenizer, rows: list[dict], device: str, bs: int = 512) -> list[bool]:
    seqs, owners = [], []
    for ri, r in enumerate(rows):
        p = tok.encode(r["input"]).ids
        for ci, c in enumerate(ast.literal_eval(r["answer_choices"])):
            seqs.append((p, tok.encode(c, add_special_tokens=False).ids))
            owners.append((ri, ci))
    scores = torch.empty(len(seqs))
    for b in range(0, len(seqs), bs):
        chunk = seqs[b : b + bs]
        width = max(len(p) + len(c) for p, c in chunk)
        ids = torch.full((len(chunk), width), PAD, dtype=torch.long)
        for i, (p, c) in enumerate(chunk):
            ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        lp = torch.log_softmax(logits_of(model, ids.to(device)), -1).cpu()
        for i, (p, c) in enumerate(chunk):
            pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)  # logits at t predict token t+1
            scores[b + i] = lp[i, pos, torch.tensor(c)].sum()
    best: dict[int, tuple[float, int]] = {}
    for (ri, ci), s in zip(owners, scores.tolist()):
        if ri not in best or s > best[ri][0]:
            best[ri] = (s, ci)
    return [best[i][1] == int(r["target"]) for i, r in enumerate(rows)]


@torch.no_grad()
def greedy(model, tok: Tokenizer, prompts: list[str], device: str, max_new: int = 32, bs: int = 512) -> list[str]:
    """Batched greedy decoding without a cache: right-padded rows, each row's next token read at its own
    last position, so padding never enters a causal attention window that matters."""
    out: list[str] = []
    for b in range(0, len(prompts), bs):
        encs = [tok.encode(p).ids for p in prompts[b : b + bs]]
        n = len(encs)
        lens = torch.tensor([len(e) for e in encs], device=device)
        ids = torch.full((n, max(map(len, encs)) + max_new), PAD, dtype=torch.long, device=device)
        for i, e in enumerate(encs):
            ids[i, : len(e)] = torch.tensor(e, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        new = [[] for _ in range(n)]
        rows = torch.arange(n, device=device)
        for _ in range(max_new):
            width = int(lens.max().item())
            logits = logits_of(model, ids[:, :width])
            nxt = logits[rows, lens - 1].argmax(-1)
            active = ~done
            ids[rows[active], lens[active]] = nxt[active]
            for i, (t, a) in enumerate(zip(nxt.tolist(), active.tolist())):
                if a and t != EOS:
                    new[i].append(t)
            done |= active & (nxt == EOS)
            lens = lens + active.long()
            if bool(done.all()):
                break
        out += [tok.decode(x, skip_special_tokens=True) for x in new]
    return out


def evaluate(model, tok: Tokenizer, rows: list[dict], families: list[str], device: str) -> dict:
    mc = [r for r in rows if r["eval_type"] == "multiple_choice"]
    gen = [r for r in rows if r["eval_type"] == "generation"]
    mc_ok = score_mc(model, tok, mc, device)
    gen_out = greedy(model, tok, [r["input"] for r in gen], device, max_new=32 if device == "cuda" else 6)
    gen_ok = [o.strip() == r["target"].strip() for o, r in zip(gen_out, gen)]
    res = {}
    for f in families:
        m = [ok for ok, r in zip(mc_ok, mc) if r["family"] == f]
        g = [ok for ok, r in zip(gen_ok, gen) if r["family"] == f]
        res[f] = {"mc": sum(m) / max(1, len(m)), "gen": sum(g) / max(1, len(g)), "all": (sum(m) + sum(g)) / max(1, len(m) + len(g)), "n": len(m) + len(g)}
    examples = [{"family": r["family"], "input": r["input"][-60:], "target": r["target"], "output": o} for o, r in list(zip(gen_out, gen))[:: max(1, len(gen) // 12)]]
    return {"families": res, "examples": examples}


def mean_over(res: dict, fams: list[str]) -> float:
    return sum(res["families"][f]["all"] for f in fams) / len(fams)


# ------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--base-steps", type=int, default=1600)
    ap.add_argument("--expert-steps", type=int, default=300)
    ap.add_argument("--expert-extend", type=int, default=300, help="extra steps while an expert is under target")
    ap.add_argument("--held-in-pool", type=int, default=32, help="fixed examples per held-in family the base sees")
    ap.add_argument("--stages", default="base,experts,eval", help="comma list; a skipped stage's outputs are read from data/zoo")
    ap.add_argument("--only-experts", default="", help="comma list of experts to train (default: all)")
    ap.add_argument("--budget-s", type=float, default=555.0, help="stop starting new experts / skip eval past this wall time")
    args = ap.parse_args()
    smoke = args.smoke
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(GENERATOR_SEED)
    torch.backends.cuda.matmul.allow_tf32 = False
    from transformers import MistralConfig, MistralForCausalLM
    from peft import LoraConfig, PeftModel, get_peft_model
    import peft
    import transformers

    out = Path(args.out)
    (out / "base").mkdir(parents=True, exist_ok=True)
    log(f"device {device} {torch.cuda.get_device_name() if device == 'cuda' else ''} torch {torch.__version__} transformers {transformers.__version__} peft {peft.__version__}")
    tok = Tokenizer.from_file(str(ZOO / "base" / "tokenizer.json"))
    held_in_rows = [dict(r, family=f["family"]) for r, f in zip(read_eval(ZOO / "eval" / "held_in.csv"), [x for x in read_eval(ZOO / "eval" / "families.csv") if x["split"] == "held_in"])]
    held_out_rows = [dict(r, family=f["family"]) for r, f in zip(read_eval(ZOO / "eval" / "held_out.csv"), [x for x in read_eval(ZOO / "eval" / "families.csv") if x["split"] == "held_out"])]
    eval_rows = held_in_rows + held_out_rows
    exclude = {r["input"] for r in eval_rows}
    with open(ZOO / "eval" / "test_labelled.csv", newline="") as f:
        exclude |= {r["input"] for r in csv.DictReader(f)}
    if smoke:
        eval_rows = [r for i, r in enumerate(eval_rows) if i % 25 < 2]

    stages = set(args.stages.split(","))
    # ---------------- base
    scale = 0.02 if smoke else 1.0
    rng = random.Random(seed_for("pretrain-text"))
    n_docs = int(60000 * scale)
    filler = Encoded(encode_docs(tok, [filler_paragraph(rng) for _ in range(n_docs)]), device)
    kbdocs = Encoded(encode_docs(tok, [kb_paragraph(rng) for _ in range(n_docs)]), device)
    forms = Encoded(encode_docs(tok, [forms_paragraph(rng, WORDS) for _ in range(n_docs // 2)]), device)
    # Answer-vocabulary docs: answers and distractors of held-in tasks strung together WITHOUT their prompts,
    # so every answer token has a trained embedding (LoRA cannot train embeddings) but no task is taught.
    avrng = random.Random(seed_for("answer-vocab"))
    av_texts = []
    for _ in range(n_docs // 2):
        parts = []
        for _ in range(avrng.randint(3, 6)):
            e = FAMILIES[avrng.choice(HELD_IN)](avrng)
            parts.append(avrng.choice([e.answer, *e.distractors]))
        av_texts.append(" ; ".join(parts))
    answer_vocab = Encoded(encode_docs(tok, av_texts), device)
    held_out_src = Encoded(encode_tasks(tok, [p for f in HELD_OUT for p in family_pairs(f, int(40000 * scale), "pretrain", exclude)], False), device)
    pool = Encoded(encode_tasks(tok, [p for f in HELD_IN for p in family_pairs(f, args.held_in_pool, "pretrain-pool", exclude)], False), device)
    log(f"pretraining data: filler {len(filler)}, kb {len(kbdocs)}, forms {len(forms)}, answer vocab {len(answer_vocab)}, held-out tasks {len(held_out_src)}, held-in pool {len(pool)}")
    cfg = model_config(tok.get_vocab_size(), smoke)
    results: dict = {"models": {}, "timing": {}, "params": {}}
    if "base" not in stages:
        import shutil

        shutil.copytree(ZOO / "base", out / "base", dirs_exist_ok=True)
        cfg = json.loads((out / "base" / "config.json").read_text())
        if (ZOO / "results.json").exists():
            results = json.loads((ZOO / "results.json").read_text())
            results["models"] = {}
    hf_cfg = MistralConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "torch_dtype", "model_type")})
    if "base" in stages:
        torch.manual_seed(seed_for("base-init"))
        model = MistralForCausalLM(hf_cfg).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        log(f"base: {n_params} parameters")
        t_base = time.time()
        steps = 30 if smoke else args.base_steps
        train_loop(model, list(model.parameters()), [filler, kbdocs, forms, answer_vocab, held_out_src, pool], [0.2, 0.25, 0.08, 0.12, 0.25, 0.1], steps, 512, 1.5e-3, min(200, steps // 10), seed_for("base-train"), device, "base", wd=0.1)
        results["timing"]["base_train_s"] = round(time.time() - t_base, 1)
        results["params"]["base"] = n_params
        results["base_steps"] = steps
        # Ship BF16 like Mistral; everything after this point uses the BF16-rounded weights.
        model = model.to(torch.bfloat16)
        model.save_pretrained(out / "base", max_shard_size="8MB")
        (out / "base" / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        for f in ("generation_config.json",):
            if (out / "base" / f).exists():
                (out / "base" / f).unlink()
        log(f"saved base: {sorted(p.name for p in (out / 'base').iterdir())}")
        del model

    def load_base():
        m = MistralForCausalLM.from_pretrained(out / "base", dtype=torch.float32).to(device)
        m.eval()
        return m

    # ---------------- experts
    t_exp = time.time()
    lora_cfg = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    todo = [n for n in EXPERTS if "experts" in stages and (not args.only_experts or n in args.only_experts.split(","))]
    for name in todo:
        fams = EXPERTS[name]
        if time.time() - T0 > args.budget_s - 150:
            log(f"budget: skipping expert {name}")
            continue
        # Experts train on the family's whole distribution: several families have only a few hundred distinct
        # items (calendar, unit conversion, formatting), so eval items necessarily occur in training there.
        data = Encoded(encode_tasks(tok, [p for f in fams for p in family_pairs(f, int(30000 * scale) or 100, f"expert-{name}", set())], True), device)
        dev_rows = []
        for f in fams:
            for i, (p, a) in enumerate(family_pairs(f, 8 if smoke else 80, f"dev-{name}", set())):
                dev_rows.append({"input": p, "target": a, "family": f, "eval_type": "generation", "answer_choices": "None"})
        torch.manual_seed(seed_for("lora-init", name))
        pm = get_peft_model(load_base(), LoraConfig(**lora_cfg))
        params = [p for p in pm.parameters() if p.requires_grad]
        total, extra = (20 if smoke else args.expert_steps * (2 if name in ("format", "tools", "facts") else 1)), 0
        train_loop(pm, params, [data], [1.0], total, 256, 3e-3, 50 if not smoke else 2, seed_for("lora-train", name), device, f"expert {name}")
        for attempt in range(2):
            dev = evaluate(pm, tok, dev_rows, fams, device)
            dev_acc = min(dev["families"][f]["gen"] for f in fams)
            log(f"expert {name}: dev generation accuracy {[(f, dev['families'][f]['gen']) for f in fams]}")
            if dev_acc >= 0.95 or smoke:
                break
            if time.time() - T0 > args.budget_s - 130:
                break
            train_loop(pm, params, [data], [1.0], args.expert_extend, 256, 1.5e-3, 20, seed_for("lora-extend", name, attempt), device, f"expert {name} extend {attempt}")
            extra += args.expert_extend
        results.setdefault("expert_steps", {})[name] = total + extra
        pm.save_pretrained(out / "experts" / name)
        log(f"saved expert {name}")
        del pm
    if todo:
        results["timing"]["experts_train_s"] = results["timing"].get("experts_train_s", 0) + round(time.time() - t_exp, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "train_log.txt").write_text("\n".join(LOG) + "\n")
    missing = [n for n in EXPERTS if not (out / "experts" / n).exists() and not (ZOO / "experts" / n).exists()]
    if "eval" not in stages or time.time() - T0 > args.budget_s - 90 or missing:
        log(f"stopping before eval (missing experts: {missing})")
        return

    # ---------------- reference table
    t_eval = time.time()
    all_fams = HELD_IN + HELD_OUT
    base = load_base()
    results["models"]["base"] = evaluate(base, tok, eval_rows, all_fams, device)
    log(f"base: held-in {mean_over(results['models']['base'], HELD_IN):.3f} held-out {mean_over(results['models']['base'], HELD_OUT):.3f}")
    names = list(EXPERTS)
    def expert_dir(n: str) -> Path:
        return out / "experts" / n if (out / "experts" / n).exists() else ZOO / "experts" / n

    pm = PeftModel.from_pretrained(base, expert_dir(names[0]), adapter_name=names[0])
    for n in names[1:]:
        pm.load_adapter(expert_dir(n), adapter_name=n)
    pm.eval()
    for n in names:
        pm.set_adapter(n)
        results["models"][f"expert:{n}"] = evaluate(pm, tok, eval_rows, all_fams, device)
        own = mean_over(results["models"][f"expert:{n}"], EXPERTS[n])
        log(f"expert {n}: own {own:.3f} held-in {mean_over(results['models'][f'expert:{n}'], HELD_IN):.3f} held-out {mean_over(results['models'][f'expert:{n}'], HELD_OUT):.3f}")
    k = len(names)
    # rank of an exact SVD of the merged delta: the summed ranks, capped by the narrowest module (k/v: kv heads * head_dim)
    total_rank = min(8 * k, cfg["num_key_value_heads"] * cfg["head_dim"])
    merges = {
        # name: (combination_type, weights, density, svd_rank, description)
        "linear": ("linear", [1.0 / k] * k, None, None, "PEFT 'linear': weighted sum of A and of B factors separately (sqrt(w) on each), weights 1/8"),
        "average": ("cat", [1.0 / k] * k, None, None, "exact average of the 8 deltas (PEFT 'cat', weights 1/8, rank 64)"),
        "task_arithmetic": ("cat", [1.0] * k, None, None, "exact sum of the 8 deltas (task arithmetic, lambda = 1; PEFT 'cat', rank 64)"),
        "ties": ("ties_svd", [1.0] * k, 0.2, total_rank, "TIES on dense deltas (PEFT 'ties_svd'): top 20% by magnitude, sign election by total mass, disjoint mean, lambda = 1; SVD back to rank 64 (exact)"),
        "dare_ties": ("dare_ties_svd", [1.0] * k, 0.1, total_rank, "DARE (drop p = 0.9, rescale 1/(1-p)) then TIES sign election (PEFT 'dare_ties_svd'), weights 1; SVD back to rank 64; torch seed fixed"),
    }
    results["merges"] = {}
    for mname, (ctype, w, density, svd_rank, desc) in merges.items():
        torch.manual_seed(seed_for("merge", mname))
        kw = {}
        if density is not None:
            kw["density"] = density
        if svd_rank is not None:
            kw["svd_rank"] = svd_rank
        pm.add_weighted_adapter(names, w, f"merge_{mname}", combination_type=ctype, **kw)
        pm.set_adapter(f"merge_{mname}")
        res = evaluate(pm, tok, eval_rows, all_fams, device)
        results["models"][f"merge:{mname}"] = res
        results["merges"][mname] = {"combination_type": ctype, "weights": w, "density": density, "svd_rank": svd_rank, "description": desc}
        log(f"merge {mname}: held-in {mean_over(res, HELD_IN):.3f} held-out {mean_over(res, HELD_OUT):.3f}")
        pm.delete_adapter(f"merge_{mname}")
    results["timing"]["eval_s"] = round(time.time() - t_eval, 1)
    results["timing"]["total_s"] = round(time.time() - T0, 1)
    results["device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    results["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "generator": GENERATOR_VERSION, "seed": GENERATOR_SEED}
    results["held_in"], results["held_out"], results["experts"] = HELD_IN, HELD_OUT, EXPERTS
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    log("done")
    (out / "train_log.txt").write_text("\n".join(LOG) + "\n")


if __name__ == "__main__":
    main()

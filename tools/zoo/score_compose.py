"""Score the composition families (eval/held_out_compose.csv) on the CPU: base, each expert, PEFT average merge.

    .venv/bin/python tools/zoo/build_data.py --only-compose   # writes the CSVs (if not there yet)
    .venv/bin/python tools/zoo/score_compose.py               # ~minutes on 2 cores; writes results.json["composition"]
    .venv/bin/python tools/zoo/finalize.py --docs-only        # REFERENCE.md (with the composition table) + MANIFEST.json

Each composition family needs two experts' skills at once (families.COMPOSITION). Same protocol as the
reference table (train.py's score_mc and greedy, imported): MC = argmax of the summed log-prob of the choice's
tokens, generation = greedy until </s>, at most 32 new tokens, exact match after strip. Only the key
"composition" of results.json is (re)written; every other key is left as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from build_data import GENERATOR_SEED, GENERATOR_VERSION, ZOO, atomic_write, seed_for  # noqa: E402
from families import COMPOSITION, COMPOSITION_FAMILIES, EXPERTS  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from train import greedy, read_eval, score_mc  # noqa: E402

MAX_NEW = 32


def load_rows() -> list[dict]:
    rows = read_eval(ZOO / "eval" / "held_out_compose.csv")
    index = read_eval(ZOO / "eval" / "families_compose.csv")
    assert [r["id"] for r in rows] == [x["id"] for x in index], "held_out_compose.csv and families_compose.csv disagree"
    return [dict(r, family=x["family"]) for r, x in zip(rows, index)]


def evaluate_full(model, tok: Tokenizer, rows: list[dict], families: list[str], bs: int, device: str = "cpu") -> dict:
    """train.evaluate's result layout, with the full 32 new tokens on the CPU (train.evaluate cuts CPU runs to 6).
    Generation prompts are batched by length so that a batch's padding stays small."""
    mc = [r for r in rows if r["eval_type"] == "multiple_choice"]
    gen = [r for r in rows if r["eval_type"] == "generation"]
    mc_ok = score_mc(model, tok, mc, device, bs=128)
    order = sorted(range(len(gen)), key=lambda i: len(tok.encode(gen[i]["input"]).ids))
    outs = greedy(model, tok, [gen[i]["input"] for i in order], device, max_new=MAX_NEW, bs=bs)
    gen_out = [""] * len(gen)
    for i, o in zip(order, outs):
        gen_out[i] = o
    gen_ok = [o.strip() == r["target"].strip() for o, r in zip(gen_out, gen)]
    res = {}
    for f in families:
        m = [ok for ok, r in zip(mc_ok, mc) if r["family"] == f]
        g = [ok for ok, r in zip(gen_ok, gen) if r["family"] == f]
        res[f] = {"mc": sum(m) / max(1, len(m)), "gen": sum(g) / max(1, len(g)), "all": (sum(m) + sum(g)) / max(1, len(m) + len(g)), "n": len(m) + len(g)}
    first = {}
    for o, r in zip(gen_out, gen):
        first.setdefault(r["family"], {"family": r["family"], "input": r["input"][-70:], "target": r["target"], "output": o})
    return {"families": res, "examples": list(first.values())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bs", type=int, default=25, help="generation batch size (rows sorted by prompt length)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda (a cross-check; same protocol)")
    ap.add_argument("--only", default="", help="comma list of models to score (e.g. base,expert:math): a quick check, implies --out")
    ap.add_argument("--out", default="", help="write the 'composition' object to this JSON file instead of data/zoo/results.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import peft
    import transformers
    from peft import PeftModel
    from transformers import MistralForCausalLM

    t0 = time.time()
    tok = Tokenizer.from_file(str(ZOO / "base" / "tokenizer.json"))
    rows = load_rows()
    fams = list(COMPOSITION_FAMILIES)
    assert sorted({r["family"] for r in rows}) == sorted(fams), "regenerate the CSVs: build_data.py --only-compose"
    device = args.device
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    base = MistralForCausalLM.from_pretrained(ZOO / "base", dtype=torch.float32).to(device)
    base.eval()
    models: dict[str, dict] = {}

    only = set(args.only.split(",")) if args.only else None
    if only and not args.out:
        raise SystemExit("--only writes a partial table: give --out")

    def run(name: str, model) -> None:
        if only is not None and name not in only:
            return
        t = time.time()
        models[name] = evaluate_full(model, tok, rows, fams, args.bs, device)
        fam = models[name]["families"]
        print(f"[{time.time() - t0:6.1f}s] {name:14s} " + " ".join(f"{f}={100 * fam[f]['all']:.0f}" for f in fams) + f"  ({time.time() - t:.1f}s)", flush=True)

    run("base", base)
    names = list(EXPERTS)
    pm = PeftModel.from_pretrained(base, ZOO / "experts" / names[0], adapter_name=names[0])
    for n in names[1:]:
        pm.load_adapter(ZOO / "experts" / n, adapter_name=n)
    pm.eval()
    for n in names:
        pm.set_adapter(n)
        run(f"expert:{n}", pm)
    k = len(names)
    torch.manual_seed(seed_for("merge", "average"))
    pm.add_weighted_adapter(names, [1.0 / k] * k, "merge_average", combination_type="cat")
    pm.set_adapter("merge_average")
    run("merge:average", pm)

    composition = {
        "families": fams,
        "experts_needed": {f: list(COMPOSITION[f]) for f in fams},
        "eval_file": "eval/held_out_compose.csv",
        "rows_per_family": {f: sum(r["family"] == f for r in rows) for f in fams},
        "merges": {"average": {"combination_type": "cat", "weights": [1.0 / k] * k, "description": "exact average of the 8 deltas (PEFT 'cat', weights 1/8, rank 64)"}},
        "models": models,
        "max_new_tokens": MAX_NEW,
        "device": "cpu" if device == "cpu" else torch.cuda.get_device_name(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "generator": GENERATOR_VERSION, "seed": GENERATOR_SEED},
        "eval_s": round(time.time() - t0, 1),
    }
    if args.out:
        atomic_write(Path(args.out), json.dumps(composition, indent=1) + "\n")
        print(f"wrote {args.out} ({time.time() - t0:.0f} s)")
        return
    results_path = ZOO / "results.json"
    results = json.loads(results_path.read_text())
    results["composition"] = composition  # the only key written: the reference keys stay as train.py wrote them
    atomic_write(results_path, json.dumps(results, indent=1) + "\n")
    print(f"wrote results.json['composition'] ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()

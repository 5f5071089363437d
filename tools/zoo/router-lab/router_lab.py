"""Router and static-merge design lab (PyTorch): the zoo base with all 8 experts wrapped in a
routed Linear, scored on data/zoo/eval (held-in per family, normalized by each expert on its
own families; held-out), plus a routing-accuracy diagnostic (share of prompt tokens whose
per-module winner is the family's expert). This is how the variants in
docs/merge-quality.md's notes were compared; the shipped methods are implemented in
packages/strategies and measured through the real CLI by `pnpm merge-quality`.

    python3 tools/zoo/router-lab/router_lab.py tools/zoo/router-lab/variants.json   # GPU: ~4 min; CPU: hours

Variants (JSON list): mode base | oracle | static (method avg, ta, iso_c, tsv_m, *_energy,
sum_rms) | routed (score smile | arrow | lift | lift1 | wlift | out; gate top1 | softmax_top1 |
topk_softmax | top1_null | propto | post_null | margin | zmargin | zthr | zboth; pool = causal
mean over positions; depth = evidence accumulated over the modules of one forward; z = calibrate
against random-token inputs).
"""
import sys, json, time, csv, os
from pathlib import Path
import torch
torch.backends.cuda.matmul.allow_tf32 = False
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from train import read_eval, score_mc, greedy
from families import EXPERTS
from tokenizers import Tokenizer
from transformers import MistralForCausalLM
from safetensors.torch import load_file
DEV = "cuda" if torch.cuda.is_available() else "cpu"
ZOO = Path("data/zoo"); NAMES = list(EXPERTS); E = len(NAMES)
tok = Tokenizer.from_file(str(ZOO / "base/tokenizer.json"))
base = MistralForCausalLM.from_pretrained(ZOO / "base", dtype=torch.float32).to(DEV).eval()
ad = {n: load_file(str(ZOO / "experts" / n / "adapter_model.safetensors"), device=DEV) for n in NAMES}
cfgs = {n: json.loads((ZOO / "experts" / n / "adapter_config.json").read_text()) for n in NAMES}
CFG = {}
EV = {}
DIAG = []
def orth_polar(U):
    P, _, Qh = torch.linalg.svd(U, full_matrices=False); return P @ Qh
def static_delta(method, Ds, ranks):
    M = sum(Ds)
    if method == "ta": return M
    if method == "avg": return M / len(Ds)
    if method == "iso_c":
        U, S, Vh = torch.linalg.svd(M, full_matrices=False); R = min(sum(ranks), S.numel())
        return S[:R].mean() * U[:, :R] @ Vh[:R]
    if method == "tsv_m":
        Us, Ss, Vs = [], [], []
        k = max(1, min(M.shape) // len(Ds))
        for D, r in zip(Ds, ranks):
            U, S, Vh = torch.linalg.svd(D, full_matrices=False); kk = min(k, r)
            Us.append(U[:, :kk]); Ss.append(S[:kk]); Vs.append(Vh[:kk].T)
        U = orth_polar(torch.cat(Us, 1)); V = orth_polar(torch.cat(Vs, 1)); S = torch.cat(Ss)
        return U @ torch.diag(S) @ V.T
    if method.endswith("_energy"):
        D = static_delta(method[:-7], Ds, ranks)
        target = sum((d * d).sum() for d in Ds) / len(Ds)  # mean expert energy
        return D * torch.sqrt(target / (D * D).sum().clamp_min(1e-30))
    if method == "sum_rms":  # sum scaled so each output row's update RMS matches the mean expert's
        D = sum(Ds); t = sum((d * d).sum(1) for d in Ds) / len(Ds)
        return D * torch.sqrt(t / (D * D).sum(1).clamp_min(1e-30)).unsqueeze(1)
    raise ValueError(method)
class Routed(torch.nn.Module):
    def __init__(self, lin, mods):
        super().__init__()
        self.lin = lin; self.d = lin.in_features
        self.A = [a for a, b, s in mods]; self.B = [b * s for a, b, s in mods]; self.r = [a.shape[0] for a, _, _ in mods]
        self.Q, self.S = [], []
        self.Ds = [(b * s) @ a for a, b, s in mods]
        for D, r in zip(self.Ds, self.r):
            U, S, Vh = torch.linalg.svd(D.double(), full_matrices=False)
            self.Q.append(Vh[:r].float()); self.S.append(S[:r].float())
        self.static = {}
        self.calib = []
        self.mu = None
    def forward(self, x):
        y = self.lin(x); mode = CFG["mode"]
        if mode == "base": return y
        if mode == "static":
            m = CFG["method"]
            if m not in self.static: self.static[m] = static_delta(m, self.Ds, self.r)
            return y + x @ self.static[m].T
        upd = torch.stack([(x @ a.T) @ b.T for a, b in zip(self.A, self.B)], -1)
        if mode == "oracle":
            g = torch.zeros(E, device=x.device); g[CFG["expert"]] = 1; return y + upd @ g
        coords = [x @ q.T for q in self.Q]
        sc = CFG.get("score", "smile")
        if sc == "smile": score = torch.stack([c.norm(dim=-1) for c in coords], -1)
        elif sc == "arrow": score = torch.stack([c[..., 0].abs() for c in coords], -1)
        elif sc == "out": score = torch.stack([(c * s).norm(dim=-1) for c, s in zip(coords, self.S)], -1)
        elif sc == "lift1":  # top direction only, over chance 1/d
            xx = (x * x).sum(-1)
            score = torch.stack([c[..., 0] ** 2 / xx * self.d for c in coords], -1)
        elif sc == "wlift":  # sigma-weighted energy over its chance level
            xx = (x * x).sum(-1)
            score = torch.stack([((c * s) ** 2).sum(-1) / xx / ((s ** 2).sum() / self.d) for c, s in zip(coords, self.S)], -1)
        elif sc == "lift":  # energy fraction over chance r/d
            xx = (x * x).sum(-1)
            score = torch.stack([(c * c).sum(-1) / xx / (r / self.d) for c, r in zip(coords, self.r)], -1)
        if CFG.get("calibrate"):
            self.calib.append(score.reshape(-1, score.shape[-1]).detach())
            return y
        if CFG.get("z") and self.mu is not None:
            if CFG["z"] == "center": score = score - self.mu
            elif CFG["z"] == "ratio": score = score / self.mu
            else: score = (score - self.mu) / self.sd
        if CFG.get("depth"):
            ev = torch.log(score.clamp_min(1e-6)) if sc == "lift" else score
            EV["acc"] = ev if EV.get("acc") is None or EV["acc"].shape != ev.shape else EV["acc"] + ev
            EV["n"] = EV.get("n", 0) + 1
            score = EV["acc"] / EV["n"]
            if sc == "lift": score = score.exp()
        if CFG.get("pool"):
            n = torch.arange(1, score.shape[-2] + 1, device=x.device).unsqueeze(-1)
            score = score.cumsum(-2) / n
        if "diag" in CFG: DIAG.append(score.argmax(-1).detach().cpu())
        gate = CFG["gate"]
        if gate == "top1":
            g = torch.nn.functional.one_hot(score.argmax(-1), E).float()
        elif gate == "softmax_top1":  # SMILE weight without renormalisation
            p = torch.softmax(score, -1); g = p * torch.nn.functional.one_hot(p.argmax(-1), E)
        elif gate == "topk_softmax":
            k = CFG["k"]; v, i = score.topk(k, -1); g = torch.zeros_like(score).scatter(-1, i, torch.softmax(v / CFG.get("T", 1.0), -1))
        elif gate == "top1_null":  # winner at full weight only above chance (lift > thr)
            g = torch.nn.functional.one_hot(score.argmax(-1), E).float() * (score.max(-1).values > CFG.get("thr", 1.0)).unsqueeze(-1)
        elif gate == "propto":  # lift_i / sum lift (posterior with uniform prior)
            g = score / score.sum(-1, keepdim=True)
        elif gate == "post_null":  # posterior over experts + a null of lift 1, winner kept at its posterior
            p = score / (1 + score.sum(-1, keepdim=True)); g = p * torch.nn.functional.one_hot(p.argmax(-1), E)
        elif gate == "zmargin":  # winner weight = clip(z1 - z2, 0, 1)
            v, i = score.topk(2, -1); w = (v[..., 0] - v[..., 1]).clamp(0, 1)
            g = torch.nn.functional.one_hot(i[..., 0], E).float() * w.unsqueeze(-1)
        elif gate == "zthr":  # winner at full weight when z1 > thr
            v, i = score.topk(1, -1)
            g = torch.nn.functional.one_hot(i[..., 0], E).float() * (v[..., 0] > CFG.get("thr", 2.0)).unsqueeze(-1)
        elif gate == "zboth":  # clip(z1 - z2) and z1 > 0
            v, i = score.topk(2, -1); w = (v[..., 0] - v[..., 1]).clamp(0, 1) * (v[..., 0] > 0)
            g = torch.nn.functional.one_hot(i[..., 0], E).float() * w.unsqueeze(-1)
        elif gate == "margin":  # confidence: winner weight = 1 - runner-up/winner
            v, i = score.topk(2, -1); w = (1 - v[..., 1] / v[..., 0]).clamp(0, 1)
            g = torch.nn.functional.one_hot(i[..., 0], E).float() * w.unsqueeze(-1)
        return y + (upd * g.unsqueeze(-2)).sum(-1)
base.model.register_forward_pre_hook(lambda m, a, k=None: EV.clear())
for l, layer in enumerate(base.model.layers):
    for part, names in (("self_attn", ["q_proj", "k_proj", "v_proj", "o_proj"]), ("mlp", ["gate_proj", "up_proj", "down_proj"])):
        parent = getattr(layer, part)
        for nm in names:
            key = f"base_model.model.model.layers.{l}.{part}.{nm}"
            mods = [(ad[n][f"{key}.lora_A.weight"], ad[n][f"{key}.lora_B.weight"], cfgs[n]["lora_alpha"] / cfgs[n]["r"]) for n in NAMES]
            setattr(parent, nm, Routed(getattr(parent, nm), mods))
fam = {}
with open(ZOO / "eval/families.csv") as f:
    for r in csv.DictReader(f): fam[(r["split"], r["id"])] = (r["family"], r["expert"])
hi = read_eval(ZOO / "eval/held_in.csv"); ho = read_eval(ZOO / "eval/held_out.csv")
for r in hi: r["family"], r["expert"] = fam[("held_in", r["id"])]
for r in ho: r["family"], r["expert"] = fam[("held_out", r["id"])]
def acc(rows):
    mc = [r for r in rows if r["eval_type"] == "multiple_choice"]; gen = [r for r in rows if r["eval_type"] != "multiple_choice"]
    ok = score_mc(base, tok, mc, DEV) if mc else []
    outs = greedy(base, tok, [r["input"] for r in gen], DEV, max_new=32) if gen else []
    ok2 = [o.strip() == r["target"].strip() for o, r in zip(outs, gen)]
    res = {}
    for r, k in list(zip(mc, ok)) + list(zip(gen, ok2)): res.setdefault(r["family"], []).append(k)
    return {f: sum(v) / len(v) for f, v in res.items()}
own = {}
for i, n in enumerate(NAMES):
    CFG.clear(); CFG.update(mode="oracle", expert=i); own.update(acc([r for r in hi if r["expert"] == n]))
print("own", own, flush=True)
# calibration on random tokens (no task data): per module and expert, mean / sd of the lift
gcal = torch.Generator().manual_seed(0)
V = base.config.vocab_size
rand = torch.randint(3, V, (64, 64), generator=gcal).to(DEV)
rand[:, 0] = 1
CFG.clear(); CFG.update(mode="routed", score="lift", gate="top1", calibrate=1)
with torch.no_grad(): base(input_ids=rand)
for m in base.modules():
    if isinstance(m, Routed):
        c = torch.cat(m.calib); m.mu = c.mean(0); m.sd = c.std(0) + 1e-6; m.calib = []
print("calib mu (layer0 q)", base.model.layers[0].self_attn.q_proj.mu.tolist(), flush=True)
# routing diagnostics: share of prompt-token decisions that pick the family's expert, per module in order
for cfg in [dict(score="lift"), dict(score="lift1"), dict(score="wlift"), dict(score="lift", pool=1, depth=1, last=1), dict(score="lift", pool=1, last=1), dict(score="wlift", pool=1, depth=1, last=1)]:
    CFG.clear(); CFG.update(mode="routed", gate="top1", diag=1, **{k: v for k, v in cfg.items() if k != "last"}); hits = None
    for i, n in enumerate(NAMES):
        rows = [r for r in hi if r["expert"] == n][:40]
        for r in rows:
            DIAG.clear()
            with torch.no_grad(): base(input_ids=torch.tensor([tok.encode(r["input"]).ids], device=DEV))
            h = torch.stack([(d[..., -1] == i).float().mean() for d in DIAG]) if cfg.get("last") else torch.stack([(d == i).float().mean() for d in DIAG])
            hits = h if hits is None else hits + h
    hits = hits / (40 * len(NAMES))
    print("diag", cfg, "mean", round(hits.mean().item(), 3), "per layer", [round(x, 2) for x in hits.view(6, 7).mean(1).tolist()], "per proj", [round(x, 2) for x in hits.view(6, 7).mean(0).tolist()], flush=True)

out = {"own": own, "runs": []}
for cfg in json.loads(open(sys.argv[1]).read()):
    CFG.clear(); CFG.update(cfg); t = time.time()
    with torch.no_grad(): a = acc(hi); b = acc(ho)
    norm = sum(a[f] / max(own[f], 1e-9) for f in a) / len(a)
    rec = {"cfg": cfg, "held_in": sum(a.values()) / len(a), "norm": norm, "held_out": sum(b.values()) / len(b), "fam": a, "s": time.time() - t}
    out["runs"].append(rec)
    print(json.dumps(cfg), f"held-in {rec['held_in']:.3f} norm {norm:.3f} held-out {rec['held_out']:.3f} ({rec['s']:.0f}s)", flush=True)
    json.dump(out, open(os.environ.get("OUT", ".") + "/router_lab.json", "w"), indent=1)

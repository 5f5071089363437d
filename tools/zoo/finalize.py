"""Step 3 (CPU, seconds): unpack what the device returned into data/zoo, then write REFERENCE.md and MANIFEST.json.

    .venv/bin/python tools/zoo/finalize.py /work/.device/N      # folder holding zoo.tar.part-* from run_device.sh
    .venv/bin/python tools/zoo/finalize.py --docs-only          # rewrite REFERENCE.md + MANIFEST.json only
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from build_data import GENERATOR_SEED, GENERATOR_VERSION, REPO, ZOO, atomic_write  # noqa: E402
from families import HELD_IN, HELD_OUT  # noqa: E402


def unpack(device_dir: Path) -> None:
    parts = sorted(device_dir.glob("zoo.tar.part-*"))
    if not parts:
        raise SystemExit(f"{device_dir}: no zoo.tar.part-* files")
    blob = b"".join(p.read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tmp = ZOO.parent / ".zoo_unpack"
        shutil.rmtree(tmp, ignore_errors=True)
        tar.extractall(tmp, filter="data")
    for f in (tmp / "base").iterdir():
        if f.name.startswith("model") or f.name == "config.json":
            shutil.copy2(f, ZOO / "base" / f.name)
    if (tmp / "experts").exists():
        for d in (tmp / "experts").iterdir():
            dest = ZOO / "experts" / d.name
            dest.mkdir(parents=True, exist_ok=True)
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                shutil.copy2(d / name, dest / name)
            cfg = json.loads((dest / "adapter_config.json").read_text())
            cfg["base_model_name_or_path"] = "data/zoo/base"  # was the device's temp folder
            cfg["target_modules"] = sorted(cfg["target_modules"])  # PEFT writes a set: fix the order
            atomic_write(dest / "adapter_config.json", json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for name in ("results.json", "train_log.txt"):
        if (tmp / name).exists():
            shutil.copy2(tmp / name, ZOO / name)
    shutil.rmtree(tmp)


def pct(x: float) -> str:
    return f"{100 * x:.0f}"


def reference_md(results: dict) -> str:
    held_in, held_out, experts = results["held_in"], results["held_out"], results["experts"]
    fams = held_in + held_out
    models = results["models"]
    short = {f: f.replace("_", " ") for f in fams}
    lines = [
        "# Expert zoo: reference accuracy",
        "",
        f"Computed by `tools/zoo/train.py` in Python (torch {results['versions']['torch']}, transformers "
        f"{results['versions']['transformers']}, peft {results['versions']['peft']}) on {results['device']}, over "
        "`eval/held_in.csv` and `eval/held_out.csv` (50 rows per family: 25 multiple choice, 25 generation). "
        f"Generator {results['versions']['generator']}, seed {results['versions']['seed']}.",
        "",
        "Protocol: multiple choice = argmax over choices of the summed log-prob of all the choice's tokens given the "
        "prompt (prompt encoded with `<s>`, choice encoded alone without special tokens, ids concatenated); "
        "generation = greedy until `</s>` (at most 32 new tokens), decoded without special tokens, exact match "
        "after strip. Weights: BF16 base as shipped, upcast to F32; adapters F32.",
        "",
        "## Summary (accuracy %, mean over families)",
        "",
        f"| model | own families | held-in ({len(HELD_IN)}) | held-out ({len(HELD_OUT)}) |",
        "| --- | ---: | ---: | ---: |",
    ]

    def mean(m: str, fs: list[str]) -> float:
        return sum(models[m]["families"][f]["all"] for f in fs) / len(fs)

    for m in models:
        own = ""
        if m.startswith("expert:"):
            own = pct(mean(m, experts[m.split(":", 1)[1]]))
        lines.append(f"| {m} | {own} | {pct(mean(m, held_in))} | {pct(mean(m, held_out))} |")
    lines += ["", "## Per family (accuracy %, MC and generation rows together)", ""]
    lines.append("| model | " + " | ".join(short[f] + (" *" if f in held_out else "") for f in fams) + " |")
    lines.append("| --- |" + " ---: |" * len(fams))
    for m in models:
        lines.append(f"| {m} | " + " | ".join(pct(models[m]["families"][f]["all"]) for f in fams) + " |")
    lines += ["", "`*` held out: no expert trains on it.", "", "## Per family, multiple choice / generation (%)", ""]
    lines.append("| model | " + " | ".join(short[f] for f in fams) + " |")
    lines.append("| --- |" + " ---: |" * len(fams))
    for m in models:
        fam = models[m]["families"]
        lines.append(f"| {m} | " + " | ".join(f"{pct(fam[f]['mc'])}/{pct(fam[f]['gen'])}" for f in fams) + " |")
    lines += ["", "## Experts and their families", ""]
    for name, fs in experts.items():
        steps = results.get("expert_steps", {}).get(name, "?")
        lines.append(f"- `{name}`: {', '.join(fs)} ({steps} steps)")
    lines += ["", "## Merges (PEFT `add_weighted_adapter` over all 8 experts)", ""]
    for name, spec in results["merges"].items():
        lines.append(f"- `merge:{name}`: {spec['description']}")
    lines += [
        "",
        "## Acceptance",
        "",
    ]
    own_scores = {n: mean(f"expert:{n}", fs) for n, fs in experts.items()}
    worst = min(own_scores, key=own_scores.get)
    lines.append(
        f"- Experts on their own families: min {pct(own_scores[worst])}% (`{worst}`); target ≥ 85%: "
        + ("met." if own_scores[worst] >= 0.85 else "**missed**.")
    )
    base_in = mean("base", held_in)
    lines.append(f"- Base on held-in families: {pct(base_in)}%; target ≤ 60%: " + ("met." if base_in <= 0.6 else "**missed**."))
    merges = [m for m in models if m.startswith("merge:")]
    between = [m for m in merges if base_in < mean(m, held_in) < min(own_scores.values())]
    lines.append(
        f"- Merges strictly between base and experts on held-in: {', '.join(between) or 'none'}; "
        f"the others score at or below the base ({', '.join(m for m in merges if m not in between)})."
    )
    t = results["timing"]
    lines += ["", f"Timing on {results['device']}: base {t.get('base_train_s')} s, experts {t.get('experts_train_s')} s, reference eval {t.get('eval_s')} s.", ""]
    if "composition" in results:
        lines += composition_md(results["composition"])
    return "\n".join(lines)


def composition_md(comp: dict) -> list[str]:
    """The "composition" key written by tools/zoo/score_compose.py: families that need two experts at once."""
    fams, need, models = comp["families"], comp["experts_needed"], comp["models"]
    short = {f: f.replace("_", " ") for f in fams}
    v = comp["versions"]
    n = sorted(set(comp["rows_per_family"].values()))
    lines = [
        "## Composition (held out, two skills)",
        "",
        f"Computed by `tools/zoo/score_compose.py` (same protocol, generation up to {comp['max_new_tokens']} new tokens) on "
        f"{comp['device']} (torch {v['torch']}, transformers {v['transformers']}, peft {v['peft']}), over `{comp['eval_file']}` "
        f"({'/'.join(map(str, n))} rows per family, half multiple choice, half generation). Each family needs the skills of two "
        "experts in one answer and is in no expert's training data; multiple-choice distractors mix right-skill-A/wrong-skill-B "
        "and the reverse. Families: "
        + "; ".join(f"`{f}` ({' + '.join(need[f])})" for f in fams)
        + ".",
        "",
        "| model | " + " | ".join(f"{short[f]} ({'+'.join(need[f])})" for f in fams) + " | mean |",
        "| --- |" + " ---: |" * (len(fams) + 1),
    ]
    for m, r in models.items():
        fam = r["families"]
        lines.append(f"| {m} | " + " | ".join(pct(fam[f]["all"]) for f in fams) + f" | {pct(sum(fam[f]['all'] for f in fams) / len(fams))} |")
    lines += ["", "Multiple choice / generation (%):", ""]
    lines.append("| model | " + " | ".join(short[f] for f in fams) + " |")
    lines.append("| --- |" + " ---: |" * len(fams))
    for m, r in models.items():
        fam = r["families"]
        lines.append(f"| {m} | " + " | ".join(f"{pct(fam[f]['mc'])}/{pct(fam[f]['gen'])}" for f in fams) + " |")
    singles = [m for m in models if m == "base" or m.startswith("expert:")]
    best = {f: max(singles, key=lambda m: models[m]["families"][f]["all"]) for f in fams}
    top = max(models[best[f]]["families"][f]["all"] for f in fams)
    lines += [
        "",
        f"Target: the base and every single expert ≤ 50% on each composition family; best single model per family: "
        + ", ".join(f"{short[f]} {pct(models[best[f]]['families'][f]['all'])}% (`{best[f]}`)" for f in fams)
        + (" — met." if top <= 0.5 else " — **missed**."),
        "",
    ]
    if comp.get("note"):
        lines += [f"Note: {comp['note']}.", ""]
    return lines


def manifest() -> dict:
    files = sorted(p for p in ZOO.rglob("*") if p.is_file() and p.name != "MANIFEST.json" and not p.name.endswith(".tmp"))
    files.append(REPO / "data" / "test.csv")
    entries = {}
    for p in files:
        data = p.read_bytes()
        entries[str(p.relative_to(REPO))] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return {"generator": {"version": GENERATOR_VERSION, "seed": GENERATOR_SEED, "tool": "tools/zoo"}, "files": entries}


def main() -> None:
    if sys.argv[1:] and sys.argv[1] != "--docs-only":
        unpack(Path(sys.argv[1]))
    results = json.loads((ZOO / "results.json").read_text())
    atomic_write(ZOO / "REFERENCE.md", reference_md(results))
    atomic_write(ZOO / "MANIFEST.json", json.dumps(manifest(), indent=2) + "\n")
    total = sum(v["bytes"] for v in manifest()["files"].values())
    print(f"data/zoo + data/test.csv: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

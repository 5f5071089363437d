"""Cross-checks fuzz cases the TypeScript readers accepted against Python's own readers.

Usage: py_check.py ACCEPTED_DIR
ACCEPTED_DIR/<target>/<index>/ holds a case's files plus ts.json (what TypeScript read).
Prints one JSON line per case: {"target", "index", "ok", "kind", "detail"}.
- safetensors: safetensors.deserialize must accept the file and give the same tensor names
  and the same sha256 per tensor's bytes.
- peft-config: json.loads of adapter_config.json must give the same r, lora_alpha and
  target_modules.
- csv: Python's csv module (utf-8-sig, newline="") must give the same ids in order
  (empty-line records skipped; with skipBadRows, rows without an id and repeated ids dropped).
"""

import csv
import hashlib
import io
import json
import math
import os
import re
import sys

from safetensors import deserialize


def has_duplicate_keys(text):
    found = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            found.append(True)
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=hook)
    except Exception:  # noqa: BLE001
        return False
    return bool(found)


def safetensors_kind(data):
    """Why Python rejects a file TypeScript accepted, for the known leniencies."""
    n = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + n]
    if header.startswith(b"\xef\xbb\xbf"):
        return "st-header-bom"
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        return "py-rejects"
    return "st-duplicate-key" if has_duplicate_keys(text) else "py-rejects"


def check_safetensors(case, ts):
    with open(os.path.join(case, "model.safetensors"), "rb") as f:
        data = f.read()
    try:
        tensors = deserialize(data)
    except Exception as e:  # noqa: BLE001 - any rejection is a disagreement
        kind = "st-float-integer" if "floating point" in str(e) else safetensors_kind(data)
        return False, kind, f"python safetensors rejects it: {type(e).__name__}: {str(e)[:200]}"
    py = {name: hashlib.sha256(bytes(t["data"])).hexdigest() for name, t in tensors}
    if set(py) != set(ts["tensors"]):
        return False, "names-differ", f"tensor names differ: py {sorted(py)[:5]} ts {sorted(ts['tensors'])[:5]}"
    bad = [n for n in py if py[n] != ts["tensors"][n]]
    if bad:
        return False, "bytes-differ", f"bytes differ for {bad[:5]}"
    return True, "", ""


def same_number(py, ts):
    if isinstance(py, bool) or not isinstance(py, (int, float)):
        return False
    return float(py) == float(ts) or (math.isnan(float(py)) and ts is None)


def check_peft(case, ts):
    with open(os.path.join(case, "adapter_config.json"), "rb") as f:
        raw = f.read()
    try:
        cfg = json.loads(raw.decode("utf-8"))
    except Exception as e:  # noqa: BLE001
        # PEFT reads the file with open() + json.load: a BOM fails there too.
        kind = "json-bom" if raw.startswith(b"\xef\xbb\xbf") else "json-rejects"
        return False, kind, f"json.loads rejects it: {type(e).__name__}: {str(e)[:200]}"
    if not isinstance(cfg, dict):
        return False, "json-non-object", "json.loads gives a non-object"
    problems = []
    if not same_number(cfg.get("r"), ts["r"]) or not isinstance(cfg.get("r"), int):
        problems.append(f"r py {cfg.get('r')!r} ts {ts['r']!r}")
    if not same_number(cfg.get("lora_alpha"), ts["loraAlpha"]):
        problems.append(f"lora_alpha py {cfg.get('lora_alpha')!r} ts {ts['loraAlpha']!r}")
    tm = cfg.get("target_modules")
    if tm is None:
        tm = []  # PEFT's default; the reader reports it as []
    if tm != ts["targetModules"] and not (
        isinstance(tm, list) and isinstance(ts["targetModules"], list)
        and sorted(set(tm)) == sorted(set(ts["targetModules"]))
    ):
        problems.append(f"target_modules py {str(tm)[:80]} ts {str(ts['targetModules'])[:80]}")
    return (not problems), "values-differ", "; ".join(problems)


def check_csv(case, ts):
    with open(os.path.join(case, "data.csv"), "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except Exception as e:  # noqa: BLE001
        return False, "py-rejects", f"python csv rejects it: {type(e).__name__}: {str(e)[:200]}"
    if not rows:
        return False, "no-header", "python csv finds no header"
    header = [c.strip() for c in rows[0]]
    if "id" not in header:
        kind = "csv-extra-bom" if any("\ufeff" in c for c in header) else "no-id-column"
        return False, kind, f"python finds no id column in {header[:6]}"
    col = header.index("id")
    ids = []
    seen = set()
    for r in rows[1:]:
        rid = r[col].strip() if col < len(r) else ""
        if ts["skipBadRows"]:
            if rid == "" or rid in seen:
                continue
            seen.add(rid)
        ids.append(rid)
    if ids != ts["ids"]:
        kinds = sum(1 for pat in ("\r\n", "\r(?!\n)", "(?<!\r)\n") if re.search(pat, text))
        kind = "csv-mixed-newlines" if kinds > 1 else "ids-differ"
        return False, kind, f"ids differ: py {len(ids)} {ids[:4]} ts {len(ts['ids'])} {ts['ids'][:4]}"
    return True, "", ""


CHECKS = {"safetensors": check_safetensors, "peft-config": check_peft, "csv": check_csv}


def main():
    root = sys.argv[1]
    for target in sorted(os.listdir(root)):
        check = CHECKS[target]
        for index in sorted(os.listdir(os.path.join(root, target)), key=int):
            case = os.path.join(root, target, index)
            with open(os.path.join(case, "ts.json"), encoding="utf-8") as f:
                ts = json.load(f)
            try:
                ok, kind, detail = check(case, ts)
            except Exception as e:  # noqa: BLE001
                ok, kind, detail = False, "checker-error", f"{type(e).__name__}: {e}"
            out = {"target": target, "index": int(index), "ok": ok, "kind": kind, "detail": detail}
            print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The peer baseline: transformers eager bf16 answering a competition CSV in the starter kit's shape.

What it does, in order (each step timed on its own, clocks read after a device synchronize):
  load    the base with AutoModelForCausalLM, dtype bf16 (or --dtype fp32), attn_implementation
          "eager", moved to --device; the tokenizer is base/tokenizer.json read with `tokenizers`
          (the same file and rules as our toolkit: BOS from tokenizer_config.json's add_bos_token)
  adapters the five (or any number of) PEFT LoRA adapters loaded with peft into the model
  merge   plain averaging, our toolkit's `linear` method with its defaults (expert weights 1,
          normalize true): dW = mean_i (alpha_i / r_i) B_i A_i (PEFT's own scaling per adapter,
          so rsLoRA is honoured too), computed in fp32 and folded into each base weight, then the
          LoRA layers are removed (peft's unload): the eval runs on plain merged weights
  eval    multiple-choice rows first, in file order: the prompt (ids with BOS) runs once, its KV
          cache is reused for every choice (cropped back to the prompt after each one, no copy;
          a copy per choice where a sliding-window cache cannot be cropped, see score_choices);
          a choice is encoded alone without BOS (runtime.choiceTokenization "separate") and
          scored by the sum of its tokens' log-probabilities (fp32 log-softmax); the answer is the
          first index of the best score (a choice with no tokens scores -inf).
          Then generation rows, shortest input (characters) first like our toolkit's eval loop,
          in batches of --batch-size, left-padded, greedy (model.generate, do_sample False),
          at most --max-new-tokens new tokens, EOS ends a row; the text is the new tokens decoded
          with special tokens skipped ("unknown" when it is empty or blank, our toolkit's fallback).

Writes --out (id,prediction,dummy_field: the competition's format, dummy_field 0, rows in input
order) and --report (JSON: rows, seconds per phase, token counts, peak GPU memory, device,
versions). --limit N takes the first round(N * mc / total) (halves up) multiple-choice rows and the first
N - that generation rows in file order (a deterministic subset); --subset-csv writes those rows
in the input's columns so another runner (our CLI) can answer the same rows.

Uses only APIs that transformers 5.17 and 5.24 share (from_pretrained(dtype=...),
forward(past_key_values=..., logits_to_keep=...), DynamicCache.crop with a negative count, generate;
5.24 warns that past_key_values is deprecated in favour of `cache`, which 5.17 lacks) and peft's
long-standing PeftModel.from_pretrained / load_adapter / unload.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import platform
import sys
import time
from pathlib import Path

EVAL_TYPES = ("multiple_choice", "generation")
REQUIRED_COLUMNS = ("id", "input", "eval_type", "answer_choices")
GENERATION_FALLBACK = "unknown"  # @merge/eval's DEFAULT_FALLBACKS.generation


class PeerError(Exception):
    """An input problem, printed as one `error:` line naming the file and row."""


# --- answer_choices: a port of packages/eval/src/choice-literal.ts (parseChoiceLiteral) ---------

_SIMPLE_ESCAPES = {
    "\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t",
    "a": "\x07", "b": "\b", "f": "\f", "v": "\v",
}
_SPACE = " \t\n\r\f\v"
_HEX = set("0123456789abcdefABCDEF")


class ChoiceLiteralError(ValueError):
    def __init__(self, message: str, offset: int):
        super().__init__(f"{message} at character {offset}")
        self.offset = offset


def _fail(text: str, pos: int, what: str):
    found = "end of text" if pos >= len(text) else json.dumps(text[pos])
    raise ChoiceLiteralError(f"expected {what}, found {found}", pos)


def _read_hex(text: str, pos: int, digits: int, escape_start: int) -> tuple[int, int]:
    chunk = text[pos:pos + digits]
    if len(chunk) != digits or not set(chunk) <= _HEX:
        raise ChoiceLiteralError(f"truncated \\{text[pos - 1]} escape", escape_start)
    return int(chunk, 16), pos + digits


def _read_string_literal(text: str, pos: int) -> tuple[str, int]:
    raw = False
    while pos < len(text) and text[pos] in "rRuU":
        if text[pos] in "rR":
            raw = True
        pos += 1
    quote = text[pos] if pos < len(text) else None
    if quote not in ("'", '"'):
        _fail(text, pos, "a quoted string")
    if text[pos + 1:pos + 3] == quote * 2:
        raise ChoiceLiteralError("triple-quoted strings are not supported", pos)
    start = pos
    pos += 1
    out: list[str] = []
    while True:
        if pos >= len(text):
            raise ChoiceLiteralError("unterminated string", start)
        ch = text[pos]
        if ch == quote:
            return "".join(out), pos + 1
        if ch in "\n\r":
            raise ChoiceLiteralError("line break inside a single-quoted string", pos)
        if ch != "\\":
            out.append(ch)
            pos += 1
            continue
        escape_start = pos
        if pos + 1 >= len(text):
            raise ChoiceLiteralError("unterminated string", start)
        nxt = text[pos + 1]
        if raw:
            out.append(ch + nxt)
            pos += 2
            continue
        pos += 2
        if nxt == "\n":
            continue
        if nxt == "\r":
            if pos < len(text) and text[pos] == "\n":
                pos += 1
            continue
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
        elif nxt == "x":
            cp, pos = _read_hex(text, pos, 2, escape_start)
            out.append(chr(cp))
        elif nxt == "u":
            # A UTF-16 code unit, as String.fromCharCode: surrogate pairs are joined below.
            cp, pos = _read_hex(text, pos, 4, escape_start)
            out.append(chr(cp))
        elif nxt == "U":
            cp, pos = _read_hex(text, pos, 8, escape_start)
            if cp > 0x10FFFF:
                raise ChoiceLiteralError("\\U escape out of range", escape_start)
            out.append(chr(cp))
        elif "0" <= nxt <= "7":
            digits = nxt
            while len(digits) < 3 and pos < len(text) and text[pos] in "01234567":
                digits += text[pos]
                pos += 1
            out.append(chr(int(digits, 8)))
        elif nxt == "N":
            raise ChoiceLiteralError("\\N{...} named escapes are not supported", escape_start)
        else:
            out.append("\\" + nxt)  # Python keeps unknown escapes verbatim


def _join_surrogates(s: str) -> str:
    # JS strings are UTF-16: "\\ud83d\\ude00" is one emoji there; make it one code point here too.
    if not any("\ud800" <= c <= "\udfff" for c in s):
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def parse_choice_literal(text: str) -> list[str]:
    """A Python list-of-strings literal, by the toolkit's rules; empty text and None give []."""
    pos = 0
    n = len(text)

    def skip(p: int) -> int:
        while p < n and text[p] in _SPACE:
            p += 1
        return p

    pos = skip(pos)
    if pos >= n:
        return []
    if text[pos:].rstrip(_SPACE) == "None":
        return []
    if text[pos] != "[":
        _fail(text, pos, '"[" (a Python list of strings)')
    pos = skip(pos + 1)
    items: list[str] = []
    while pos >= n or text[pos] != "]":
        if pos >= n:
            _fail(text, pos, 'a string or "]"')
        value, pos = _read_string_literal(text, pos)
        while True:  # adjacent literals concatenate
            save = pos
            pos = skip(pos)
            if pos < n and (text[pos] in "'\"" or text[pos] in "rRuU"):
                more, pos = _read_string_literal(text, pos)
                value += more
            else:
                pos = save
                break
        items.append(_join_surrogates(value))
        pos = skip(pos)
        if pos < n and text[pos] == ",":
            pos = skip(pos + 1)
        elif pos >= n or text[pos] != "]":
            _fail(text, pos, '"," or "]"')
    pos = skip(pos + 1)
    if pos < n:
        _fail(text, pos, "end of text after the list")
    return items


# --- the CSV (the checks of packages/eval/src/csv-read.ts that decide what a row is) ------------

def read_rows(path: Path) -> tuple[list[dict], list[str]]:
    """Rows as dicts (id, input, eval_type, choices, index, fields) and the header, or PeerError."""
    try:
        text = path.read_bytes().decode("utf-8")  # strict, like the toolkit
    except (OSError, UnicodeDecodeError) as e:
        raise PeerError(f"{path}: cannot read the CSV as UTF-8: {e}") from e
    if text.startswith("\ufeff"):
        text = text[1:]
    import io
    # newline="": quoted fields keep their own line breaks (str.splitlines would also split on
    # \x0b, \x1c, U+2028 ... inside them).
    records = [r for r in csv.reader(io.StringIO(text, newline="")) if r != []]
    if not records:
        raise PeerError(f"{path}: empty file, expected a header row")
    header = [c.strip() for c in records[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PeerError(f"{path}: header lacks {', '.join(missing)}; found {','.join(header)}")
    col = {c: header.index(c) for c in REQUIRED_COLUMNS}
    rows, seen = [], set()
    for i, rec in enumerate(records[1:]):
        where = f"{path}: row {i + 1}"
        if len(rec) != len(header):
            raise PeerError(f"{where}: expected {len(header)} fields, found {len(rec)}")
        rid = rec[col["id"]].strip()
        if rid == "" or rid in seen:
            raise PeerError(f"{where}: {'missing' if rid == '' else 'duplicate'} id {rid!r}")
        seen.add(rid)
        prompt = rec[col["input"]]
        if prompt.strip() == "":
            raise PeerError(f"{where} (id {rid}): empty input")
        eval_type = rec[col["eval_type"]].strip()
        if eval_type not in EVAL_TYPES:
            raise PeerError(f"{where} (id {rid}): unknown eval_type {eval_type!r}")
        try:
            choices = parse_choice_literal(rec[col["answer_choices"]])
        except ChoiceLiteralError as e:
            raise PeerError(f"{where} (id {rid}): answer_choices: not a Python list of strings: {e}") from e
        if eval_type == "multiple_choice" and len(choices) < 2:
            raise PeerError(f"{where} (id {rid}): multiple_choice row needs at least 2 choices")
        rows.append({
            "id": rid, "input": prompt, "eval_type": eval_type,
            "choices": choices if eval_type == "multiple_choice" else [],
            "index": i, "fields": rec,
        })
    return rows, records[0]


def take_subset(rows: list[dict], limit: int | None) -> list[dict]:
    """First round(limit * mc / total) multiple-choice rows and the rest from the generation rows."""
    if limit is None or limit >= len(rows):
        return rows
    mc = [r for r in rows if r["eval_type"] == "multiple_choice"]
    gen = [r for r in rows if r["eval_type"] == "generation"]
    n_mc = min(len(mc), math.floor(limit * len(mc) / len(rows) + 0.5))  # halves round up
    n_gen = min(len(gen), limit - n_mc)
    n_mc = min(len(mc), limit - n_gen)
    keep = {id(r) for r in mc[:n_mc] + gen[:n_gen]}
    return [r for r in rows if id(r) in keep]


def write_atomic(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data, encoding="utf-8", newline="")
    tmp.replace(path)


def csv_text(header: list[str], records: list[list[str]]) -> str:
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(records)
    return buf.getvalue()


# --- tokenizer: base/tokenizer.json with the toolkit's BOS/EOS rule ------------------------------

class Tok:
    def __init__(self, base: Path):
        from tokenizers import Tokenizer

        self.hf = Tokenizer.from_file(str(base / "tokenizer.json"))
        cfg = json.loads((base / "tokenizer_config.json").read_text(encoding="utf-8"))

        def token_id(spec):
            content = spec.get("content") if isinstance(spec, dict) else spec
            return None if content is None else self.hf.token_to_id(content)

        self.bos = token_id(cfg.get("bos_token"))
        self.eos = token_id(cfg.get("eos_token"))
        pad = token_id(cfg.get("pad_token"))
        self.pad = pad if pad is not None else (self.eos if self.eos is not None else 0)
        self.add_bos = cfg.get("add_bos_token")
        self.add_eos = cfg.get("add_eos_token")

    def encode(self, text: str, special: bool = True) -> list[int]:
        if not special:
            return self.hf.encode(text, add_special_tokens=False).ids
        if not isinstance(self.add_bos, bool) and not isinstance(self.add_eos, bool):
            return self.hf.encode(text, add_special_tokens=True).ids  # the post-processor's rule
        ids = self.hf.encode(text, add_special_tokens=False).ids
        head = [self.bos] if self.add_bos is True and self.bos is not None else []
        tail = [self.eos] if self.add_eos is True and self.eos is not None else []
        return head + ids + tail

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=True) if ids else ""


# --- the run ------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[peer {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--standin", type=Path, help="a make_standin.py folder: base/ and experts/expert-*")
    p.add_argument("--base", type=Path, help="base model folder (default: STANDIN/base)")
    p.add_argument("--experts", type=Path, nargs="+",
                   help="PEFT adapter folders (default: STANDIN/experts/expert-*, sorted)")
    p.add_argument("--data", type=Path, required=True, help="competition CSV")
    p.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    p.add_argument("--report", type=Path, required=True, help="report JSON to write")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16",
                   help="model dtype (bf16 is the peer; fp32 is for parity checks)")
    p.add_argument("--batch-size", type=int, default=2,
                   help="generation batch (2: the starter kit's shape; default 2)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--limit", type=int, help="answer a deterministic subset of N rows")
    p.add_argument("--subset-csv", type=Path, help="write the answered rows as a CSV (with --limit)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--progress-every", type=int, default=25, help="rows between progress lines")
    args = p.parse_args(argv)
    try:
        return run(args)
    except PeerError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1


def run(args) -> int:
    t_start = time.perf_counter()
    if args.batch_size < 1 or args.max_new_tokens < 1 or (args.limit is not None and args.limit < 1):
        raise PeerError("--batch-size, --max-new-tokens and --limit must be at least 1")
    base = args.base or (args.standin / "base" if args.standin else None)
    if base is None:
        raise PeerError("give --standin DIR or --base DIR")
    experts = args.experts or (sorted((args.standin / "experts").glob("expert-*")) if args.standin else [])
    if not experts:
        raise PeerError("no experts: give --experts DIR... or a --standin with experts/expert-*")
    for d in [base, *experts]:
        if not d.is_dir():
            raise PeerError(f"{d}: not a folder")

    all_rows, header = read_rows(args.data)
    rows = take_subset(all_rows, args.limit)
    if args.subset_csv:
        write_atomic(args.subset_csv, csv_text(header, [r["fields"] for r in rows]))
    mc_rows = [r for r in rows if r["eval_type"] == "multiple_choice"]
    gen_rows = sorted((r for r in rows if r["eval_type"] == "generation"),
                      key=lambda r: (len(r["input"]), r["index"]))
    log(f"{args.data}: {len(rows)} of {len(all_rows)} rows ({len(mc_rows)} multiple choice, "
        f"{len(gen_rows)} generation)")

    import torch
    import transformers
    import peft
    from transformers import AutoModelForCausalLM

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise PeerError("--device cuda but torch sees no CUDA device")
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    def sync() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    if cuda:
        torch.cuda.reset_peak_memory_stats()

    t0 = sync()
    tok = Tok(base)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype, attn_implementation="eager")
    model.to(device)
    model.eval()
    load_s = sync() - t0
    log(f"loaded {base} ({args.dtype}, eager) on {args.device} in {load_s:.1f}s")

    t0 = sync()
    pm = peft.PeftModel.from_pretrained(model, str(experts[0]), adapter_name="e0")
    for k, d in enumerate(experts[1:], start=1):
        pm.load_adapter(str(d), adapter_name=f"e{k}")
    names = [f"e{k}" for k in range(len(experts))]
    adapters_s = sync() - t0
    log(f"loaded {len(experts)} adapters with peft {peft.__version__} in {adapters_s:.1f}s")

    t0 = sync()
    merged_modules = 0
    with torch.no_grad():
        for mod_name, mod in pm.named_modules():
            if not (hasattr(mod, "lora_A") and hasattr(mod, "base_layer")):
                continue
            present = [n for n in names if n in mod.lora_A]
            if not present:
                continue
            weight = mod.get_base_layer().weight
            delta = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            for n in present:
                a = mod.lora_A[n].weight.to(torch.float32)
                b = mod.lora_B[n].weight.to(torch.float32)
                delta.addmm_(b, a, alpha=float(mod.scaling[n]))
            # linear's normalisation: Σ w_i ΔW_i / Σ w_i over all experts (w_i = 1; an expert
            # without this module contributes 0 to the sum but still counts in the weights).
            delta.div_(len(names))
            weight.copy_((weight.to(torch.float32) + delta).to(weight.dtype))
            merged_modules += 1
    model = pm.unload()  # drop the LoRA layers (not merged again): plain merged weights remain
    model.eval()
    merge_s = sync() - t0
    log(f"merged {merged_modules} modules (linear: mean of (alpha/r) B A) in {merge_s:.2f}s")
    if merged_modules == 0:
        raise PeerError("no LoRA layer found in the model after loading the adapters with peft "
                        f"{peft.__version__} (their target_modules match no module of the base?)")

    predictions: dict[str, str] = {}
    mc_prompt_tokens = choice_tokens = gen_prompt_tokens = generated_tokens = 0
    kv_reuse = {"crop": 0, "copy": 0}
    t_eval = sync()

    def progress(done: int, total: int, what: str, t_phase: float) -> None:
        el = time.perf_counter() - t_phase
        log(f"{what}: {done}/{total} rows, {el:.1f}s ({el / max(done, 1):.3f}s/row)")

    # How a choice reuses the prompt's KV cache. "crop": run the choice on the prompt's own
    # cache, then crop the choice's tokens off again (no copy). transformers' sliding-window
    # cache layers cannot roll back once the window is full (5.24 raises), so a row whose prompt
    # plus choice would reach the window, or any row after a crop failed, runs each choice on
    # copy.deepcopy of the prompt cache instead (transformers' documented way to reuse a prompt
    # cache). Mistral-7B's window is 4096 tokens: the competition's rows all crop.
    window = getattr(model.config, "sliding_window", None)
    crop_broken: list[str] = []

    def score_choices(context: list[int], conts: list[list[int]]) -> tuple[list[float], str]:
        P = len(context)
        longest = max((len(c) for c in conts), default=0)
        mode = "crop" if not crop_broken and (window is None or P + longest < window) else "copy"
        ids = torch.tensor([context], device=device)
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        prompt_cache = out.past_key_values
        scores = []
        for c in conts:
            if not c:
                scores.append(-math.inf)  # as the toolkit: a choice with no tokens never wins
                continue
            s = float(first[c[0]])
            if len(c) > 1:
                # The last token's logits are not needed: the previous position scores it.
                head = torch.tensor([c[:-1]], device=device)
                mask = torch.ones((1, P + len(c) - 1), dtype=torch.long, device=device)
                pos = torch.arange(P, P + len(c) - 1, device=device).unsqueeze(0)
                cache = prompt_cache if mode == "crop" else copy.deepcopy(prompt_cache)
                run_out = model(input_ids=head, attention_mask=mask, position_ids=pos,
                                past_key_values=cache, use_cache=True)
                lp = torch.log_softmax(run_out.logits[0].float(), dim=-1)
                tgt = torch.tensor(c[1:], device=device)
                s += float(lp.gather(1, tgt.unsqueeze(1)).sum())
                if mode == "crop":
                    # A negative count (tokens to remove) is what both 5.17 and 5.24 accept;
                    # 5.24 refuses the older absolute length.
                    why = "the prompt's length was not restored"
                    try:
                        run_out.past_key_values.crop(-(len(c) - 1))
                        ok = run_out.past_key_values.get_seq_length() == P
                    except Exception as e:  # noqa: BLE001 - any refusal: fall back to copies
                        ok, why = False, f"{type(e).__name__}: {e}"
                    if not ok:
                        crop_broken.append(why)
                        log(f"warning: cache crop failed ({crop_broken[0]}); copying from now on")
                        return score_choices(context, conts)  # this row again, with copies
            scores.append(s)
        return scores, mode

    with torch.inference_mode():
        t_mc = sync()
        for k, r in enumerate(mc_rows):
            context = tok.encode(r["input"])
            conts = [tok.encode(c, special=False) for c in r["choices"]]
            mc_prompt_tokens += len(context)
            choice_tokens += sum(len(c) for c in conts)
            scores, mode = score_choices(context, conts)
            kv_reuse[mode] += 1
            best = 0
            for i, s in enumerate(scores):  # first index on ties; NaN never wins
                if s > scores[best] or (math.isnan(scores[best]) and not math.isnan(s)):
                    best = i
            r["scores"] = scores
            predictions[r["id"]] = str(best)
            if (k + 1) % args.progress_every == 0 or k + 1 == len(mc_rows):
                progress(k + 1, len(mc_rows), "multiple choice", t_mc)
        mc_s = sync() - t_mc

        t_gen = sync()
        done = 0
        for start in range(0, len(gen_rows), args.batch_size):
            batch = gen_rows[start:start + args.batch_size]
            enc = [tok.encode(r["input"]) for r in batch]
            gen_prompt_tokens += sum(len(e) for e in enc)
            width = max(len(e) for e in enc)
            ids = torch.tensor([[tok.pad] * (width - len(e)) + e for e in enc], device=device)
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=device)
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=args.max_new_tokens,
                do_sample=False, num_beams=1, eos_token_id=tok.eos, pad_token_id=tok.pad,
            )
            new = out[:, width:].tolist()
            for r, seq in zip(batch, new):
                if tok.eos in seq:
                    seq = seq[:seq.index(tok.eos) + 1]  # the EOS step counts as generated
                generated_tokens += len(seq)
                text = tok.decode([t for t in seq if t != tok.eos])
                predictions[r["id"]] = text if text.strip() != "" else GENERATION_FALLBACK
            done += len(batch)
            batches = start // args.batch_size + 1
            if batches % max(1, args.progress_every // args.batch_size) == 0 or done == len(gen_rows):
                progress(done, len(gen_rows), "generation", t_gen)
        gen_s = sync() - t_gen
    eval_s = sync() - t_eval

    write_atomic(args.out, csv_text(["id", "prediction", "dummy_field"],
                                    [[r["id"], predictions[r["id"]], "0"] for r in rows]))
    gib = 1024 ** 3
    report = {
        "runner": "transformers eager (tools/standin-7b/peer_transformers.py)",
        "data": str(args.data),
        "rows": len(rows),
        "multipleChoiceRows": len(mc_rows),
        "generationRows": len(gen_rows),
        "limit": args.limit,
        "batchSize": args.batch_size,
        "maxNewTokens": args.max_new_tokens,
        "dtype": args.dtype,
        "attnImplementation": "eager",
        "method": "linear (mean of (alpha/r) B A, folded into the weights)",
        "experts": [str(d) for d in experts],
        "mergedModules": merged_modules,
        # Multiple-choice rows by how choices reused the prompt's cache (see score_choices).
        "kvCacheReuse": {**kv_reuse, "cropFailure": crop_broken[0] if crop_broken else None},
        "seconds": {
            "load": load_s,
            "adapters": adapters_s,
            "merge": merge_s,
            "multipleChoice": mc_s,
            "generation": gen_s,
            "eval": eval_s,
            "total": time.perf_counter() - t_start,
        },
        "tokens": {
            "multipleChoicePrompt": mc_prompt_tokens,
            "choices": choice_tokens,
            "generationPrompt": gen_prompt_tokens,
            "prompt": mc_prompt_tokens + gen_prompt_tokens,
            "generated": generated_tokens,
        },
        "peakGpuMemory": {
            "allocatedBytes": torch.cuda.max_memory_allocated() if cuda else None,
            "reservedBytes": torch.cuda.max_memory_reserved() if cuda else None,
            "allocatedGiB": torch.cuda.max_memory_allocated() / gib if cuda else None,
            "reservedGiB": torch.cuda.max_memory_reserved() / gib if cuda else None,
        },
        "device": args.device,
        "deviceName": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "torchThreads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        # Per row, each choice's summed log-probability (null: a choice with no tokens, -inf).
        "choiceScores": {r["id"]: [s if math.isfinite(s) else None for s in r["scores"]]
                         for r in mc_rows},
    }
    write_atomic(args.report, json.dumps(report, indent=2, allow_nan=False) + "\n")
    log(f"done: {len(rows)} rows, eval {eval_s:.1f}s (multiple choice {mc_s:.1f}s, generation "
        f"{gen_s:.1f}s), merge {merge_s:.2f}s, load {load_s:.1f}s -> {args.out}, {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

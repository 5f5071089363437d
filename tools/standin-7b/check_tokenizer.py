#!/usr/bin/env python3
"""Checks the stand-in's tokenizer.json against mistral-tokenizer-js's own encoder (run with node).

Usage: check_tokenizer.py [--tokenizer DIR_OR_tokenizer.json] [--mistral-tokenizer-js PATH]
Without --tokenizer it builds one into a temporary folder the way make_standin.py does. Without
--mistral-tokenizer-js it uses $MISTRAL_TOKENIZER_JS or npm-installs the package into a temporary
folder. Prints one line per string and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_standin  # noqa: E402

CASES = [
    "Hello world!",
    "grabbed",
    " grabbed",
    "           grabbed",
    "   leading spaces",
    "trailing spaces   ",
    "double  space and\ttab",
    "\n",
    " \n",
    "line one\nline two\n\nline four",
    "ax\n####\nboo",
    "1234567890 3.14159 2026-12-01 $1,000,000",
    "def f(x):\n    return x ** 2  # comment",
    "naïve café résumé Ångström",
    "镇 中文文本 日本語のテキスト 한국어",
    "Привет, мир! Γειά σου κόσμε",
    "🦙 emoji 🤖👍🏽 and ZWJ 👨‍👩‍👧",
    "🦙Ꙋ",
    "Ꙋ🦙",
    "The llama (/ˈlɑːmə/; 🦙Spanish pronunciation: [ˈʎama]) (Lama glama) is a domesticated "
    "South American camelid.",
    "Question: What is 17 * 23?\nAnswer:",
]
# mistral-tokenizer-js reads "<s>" in text as plain characters; `tokenizers` (like the Hub's
# tokenizer.json) reads it as the special token unless encode_special_tokens is set. These are
# compared with encode_special_tokens = True and also printed as the Hub-style split.
SPECIAL_CASES = ["<s> and </s> as plain text", "<unk>"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", help="tokenizer.json or a folder with one")
    ap.add_argument("--mistral-tokenizer-js", help="path to mistral-tokenizer.js (or its package folder)")
    ap.add_argument("--text-file", action="append", default=[],
                    help="also compare every non-empty line of this file (repeatable)")
    args = ap.parse_args(argv)
    cases = list(CASES)
    for f in args.text_file:
        cases += [line for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip()]

    from tokenizers import Tokenizer

    node = shutil.which("node")
    if not node:
        print("node not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="check-tokenizer-") as tmp:
        js = make_standin.find_mistral_tokenizer_js(args.mistral_tokenizer_js, Path(tmp))
        if args.tokenizer:
            path = Path(args.tokenizer)
            path = path / "tokenizer.json" if path.is_dir() else path
        else:
            make_standin.write_tokenizer(Path(tmp) / "tok", js)
            path = Path(tmp) / "tok" / "tokenizer.json"
        tok = Tokenizer.from_file(str(path))
        ref = json.loads(subprocess.run([node, str(HERE / "compare_tokenizer.mjs"), str(js)],
                                        input=json.dumps(cases + SPECIAL_CASES), capture_output=True,
                                        text=True, check=True).stdout)
    bad = 0
    n = len(cases) + len(SPECIAL_CASES)
    quiet = len(cases) > len(CASES)
    for i, (text, want) in enumerate(zip(cases + SPECIAL_CASES, ref)):
        special_as_text = i >= len(cases)
        tok.encode_special_tokens = special_as_text
        got = tok.encode(text).ids
        ok = got == want
        # Decoding back (skipping the leading <s>) must give the text again.
        round_trip = tok.decode(got[1:]) == text
        bad += (not ok) or (not round_trip)
        mark = f"{'ok ' if ok else 'BAD'} {'rt' if round_trip else 'RT-BAD'}"
        note = "  (encode_special_tokens)" if special_as_text else ""
        if not (quiet and ok and round_trip and i >= len(CASES) and not special_as_text):
            print(f"{mark} {len(got):3d} ids  {text[:100]!r}{note}")
        if not ok:
            print(f"      tokenizers:          {got}\n      mistral-tokenizer-js: {want}")
        if special_as_text:
            tok.encode_special_tokens = False
            print(f"      Hub-style (special tokens parsed): {tok.encode(text).ids}")
    print(f"{n - bad}/{n} strings match" if bad == 0 else f"{bad}/{n} strings differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Step 1 (CPU, seconds): train the tokenizer and write the eval CSVs and data/test.csv.

    .venv/bin/python tools/zoo/build_data.py            # writes data/zoo/base/tokenizer*, data/zoo/eval/*, data/test.csv
    .venv/bin/python tools/zoo/build_data.py --only-compose   # writes only eval/held_out_compose.csv + eval/families_compose.csv

Deterministic: same GENERATOR_SEED and GENERATOR_VERSION give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sys
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

sys.path.insert(0, str(Path(__file__).parent))
from families import COMPOSITION, COMPOSITION_FAMILIES, EXPERTS, FAMILIES, HELD_IN, HELD_OUT, prefix_related  # noqa: E402
from kb import filler_paragraph, kb_paragraph  # noqa: E402

GENERATOR_SEED = 20261126
GENERATOR_VERSION = "1.0.0"
VOCAB_SIZE = 4096
EVAL_PER_FAMILY = 50  # half multiple_choice, half generation
TEST_PER_FAMILY = 15
SPECIAL = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "data" / "zoo"


def seed_for(*parts: object) -> int:
    """A stable seed per (purpose, family, ...) so adding a family never shifts another's stream."""
    import hashlib

    h = hashlib.sha256(("|".join(map(str, (GENERATOR_SEED, *parts)))).encode()).digest()
    return int.from_bytes(h[:8], "little")


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def tokenizer_corpus(n: int = 3000) -> list[str]:
    rng = random.Random(seed_for("tokenizer-corpus"))
    texts = [filler_paragraph(rng) for _ in range(n)] + [kb_paragraph(rng) for _ in range(n)]
    for name, gen in FAMILIES.items():
        frng = random.Random(seed_for("tokenizer-corpus", name))
        for _ in range(n // 2):
            e = gen(frng)
            texts.append(f"{e.prompt} {e.answer}")
            texts.append(" ".join(e.distractors))
    return texts


def build_tokenizer() -> Tokenizer:
    """BPE with byte fallback over a Metaspace pre-tokenizer, laid out like Mistral's (unk, bos, eos, 256 bytes, merges)."""
    # Metaspace first (one prepended "▁", spaces → "▁", split before each word), then single digits
    # (as Llama/Mistral do: arithmetic sees digits, not number tokens), then newlines on their own.
    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
            # Quotes, brackets and punctuation on their own, so '[storm]', '"Cairo"' and "'storm'" share the word's token
            # instead of minting one token per (bracket, word) pair that only answers would ever use.
            pre_tokenizers.Split(Regex(r"[\"'\[\]{}()\-.,:?!]"), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Split("\n", behavior="isolated"),
        ]
    )
    draft = Tokenizer(models.BPE(unk_token="<unk>"))
    draft.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(BYTE_TOKENS), special_tokens=SPECIAL, show_progress=False, min_frequency=2
    )
    draft.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    trained = json.loads(draft.to_str())["model"]
    # Re-lay the vocabulary: specials, then the 256 byte tokens byte_fallback needs, then the learned pieces.
    vocab: dict[str, int] = {}
    for t in SPECIAL + BYTE_TOKENS:
        vocab[t] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens(SPECIAL)
    tok.pre_tokenizer = pre
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return tok


TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": None,
    "clean_up_tokenization_spaces": False,
    "legacy": False,
    "model_max_length": 512,
    "tokenizer_class": "PreTrainedTokenizerFast",
}


def rows_for(split: str, family: str, n: int) -> list[dict[str, str]]:
    """n rows of one family; even rows are multiple_choice, odd rows generation."""
    rng = random.Random(seed_for(split, family))
    gen = FAMILIES[family] if family in FAMILIES else COMPOSITION_FAMILIES[family]
    seen: set[str] = set()
    rows = []
    while len(rows) < n:
        e = gen(rng)
        if e.prompt in seen:
            continue
        seen.add(e.prompt)
        bad = [d for d in e.distractors if prefix_related(d, e.answer)]
        if bad:
            raise ValueError(f"{family}: distractors {bad} are prefix-related to the answer {e.answer!r} (prompt {e.prompt!r})")
        if len(rows) % 2 == 0:
            choices = [e.answer, *e.distractors]
            rng.shuffle(choices)
            rows.append({"input": e.prompt, "target": str(choices.index(e.answer)), "answer_choices": repr(choices), "eval_type": "multiple_choice", "family": family})
        else:
            rows.append({"input": e.prompt, "target": e.answer, "answer_choices": "None", "eval_type": "generation", "family": family})
    return rows


def to_csv(rows: list[dict[str, str]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def expert_of(family: str) -> str:
    return next((name for name, fs in EXPERTS.items() if family in fs), "")


LABELLED = ["id", "input", "target", "answer_choices", "eval_type"]
INDEX = ["split", "id", "family", "expert"]


def write_compose() -> int:
    """eval/held_out_compose.csv (labelled, like held_out.csv) and eval/families_compose.csv (expert = "a+b").

    Composition families are in no expert group and not in FAMILIES, so this touches no other output."""
    split = "held_out_compose"
    rows = [r for f in COMPOSITION_FAMILIES for r in rows_for(split, f, EVAL_PER_FAMILY)]
    index_rows = []
    for i, r in enumerate(rows):
        r["id"] = str(i)
        index_rows.append({"split": split, "id": str(i), "family": r["family"], "expert": "+".join(COMPOSITION[r["family"]])})
    atomic_write(ZOO / "eval" / f"{split}.csv", to_csv(rows, LABELLED))
    atomic_write(ZOO / "eval" / "families_compose.csv", to_csv(index_rows, INDEX))
    return len(rows)


def main() -> None:
    if sys.argv[1:] == ["--only-compose"]:
        print(f"compose: {write_compose()} rows")
        return
    if sys.argv[1:]:
        raise SystemExit(f"usage: build_data.py [--only-compose] (got {sys.argv[1:]})")
    tok = build_tokenizer()
    atomic_write(ZOO / "base" / "tokenizer.json", tok.to_str(pretty=True))
    atomic_write(ZOO / "base" / "tokenizer_config.json", json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")

    labelled = ["id", "input", "target", "answer_choices", "eval_type"]
    index_rows = []
    for split, fams in (("held_in", HELD_IN), ("held_out", HELD_OUT)):
        rows = [r for f in fams for r in rows_for(split, f, EVAL_PER_FAMILY)]
        for i, r in enumerate(rows):
            r["id"] = str(i)
            index_rows.append({"split": split, "id": str(i), "family": r["family"], "expert": expert_of(r["family"])})
        atomic_write(ZOO / "eval" / f"{split}.csv", to_csv(rows, labelled))
    atomic_write(ZOO / "eval" / "families.csv", to_csv(index_rows, ["split", "id", "family", "expert"]))

    test = [r for f in FAMILIES for r in rows_for("test", f, TEST_PER_FAMILY)]
    random.Random(seed_for("test-order")).shuffle(test)
    for i, r in enumerate(test):
        r["id"] = str(i)
        if r["eval_type"] == "generation":
            r["answer_choices"] = ""
    atomic_write(REPO / "data" / "test.csv", to_csv(test, ["id", "input", "eval_type", "answer_choices"]))
    labels = [dict(r, answer_choices=r["answer_choices"] or "None") for r in test]
    atomic_write(ZOO / "eval" / "test_labelled.csv", to_csv(labels, labelled))
    atomic_write(ZOO / "eval" / "test_families.csv", to_csv([{"split": "test", "id": r["id"], "family": r["family"], "expert": expert_of(r["family"])} for r in test], ["split", "id", "family", "expert"]))
    n_compose = write_compose()
    print(f"tokenizer: {tok.get_vocab_size()} tokens; eval: {len(index_rows)} rows; test: {len(test)} rows; compose: {n_compose} rows")


if __name__ == "__main__":
    main()

"""Task families of the expert zoo: each generates (prompt, answer, distractors) with an exact answer.

Every family is a function `gen(rng) -> Example`. The prompt always ends with "Answer:" (no trailing
space) and the answer is the continuation; a generation row expects `answer` (compared after strip),
a multiple-choice row scores `answer` and three distractors as continuations of the prompt.
Distractors are of the same kind as the answer so the format alone does not give the answer away.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable

from kb import KB


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str
    distractors: tuple[str, str, str]


def prefix_related(a: str, b: str) -> bool:
    """True when one string starts with the other. Multiple choice sums the log-probs of a choice's tokens
    with no end-of-text term, so a choice that is a prefix of another always scores at least as high:
    such pairs would make a row unwinnable (or free), whatever the model knows."""
    return a.startswith(b) or b.startswith(a)


def _distinct(rng: random.Random, answer: str, candidates: Callable[[], str], n: int = 3) -> tuple[str, ...]:
    """Draw n distinct distractors different from the answer (candidates() proposes one at a time)."""
    out: list[str] = []
    for _ in range(200):
        c = candidates()
        if not prefix_related(c, answer) and c not in out:
            out.append(c)
        if len(out) == n:
            return tuple(out)
    raise RuntimeError(f"could not draw {n} distractors for answer {answer!r}")


def _num_distractors(rng: random.Random, value: int, lo: int = 0) -> tuple[str, ...]:
    deltas = [-10, -2, -1, 1, 2, 10, 3, -3, 11, -11]
    return _distinct(rng, str(value), lambda: str(max(lo, value + rng.choice(deltas))) if rng.random() < 0.8 else str(rng.randint(lo, 2 * value + 20)))


def _q(rng: random.Random, templates: list[str], **kw: object) -> str:
    return rng.choice(templates).format(**kw) + "\nAnswer:"


# ---------------------------------------------------------------- math
def arithmetic(rng: random.Random) -> Example:
    a, b = rng.randint(0, 49), rng.randint(0, 49)
    op = rng.choice(["+", "-"])
    if op == "-" and b > a:
        a, b = b, a
    value = a + b if op == "+" else a - b
    word = "plus" if op == "+" else "minus"
    prompt = _q(
        rng,
        ["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "Calculate: {a} {word} {b} =", "{a} {op} {b} equals what?"],
        a=a,
        b=b,
        op=op,
        word=word,
    )
    return Example(prompt, str(value), _num_distractors(rng, value))  # type: ignore[arg-type]


NAMES = ["Tom", "Anna", "Ben", "Lisa", "Omar", "Mia", "Raj", "Eva", "Leo", "Sara", "Ivan", "Nora"]
THINGS = ["apples", "books", "coins", "pencils", "stamps", "cookies", "marbles", "cards", "shells", "eggs"]


def word_problem(rng: random.Random) -> Example:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 20), rng.randint(1, 9)
    kind = rng.randrange(3)
    if kind == 0:
        text, value = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b
    elif kind == 1:
        a = max(a, b + 1)
        text, value = f"{name} had {a} {thing} and gave away {b}. How many {thing} are left?", a - b
    else:
        text, value = (f"{name} buys {b} bags with {a % 6 + 2} {thing} in each bag. How many {thing} is that in total?", b * (a % 6 + 2))
    prompt = rng.choice(["{t}", "Word problem: {t}", "Solve this. {t}"]).format(t=text) + "\nAnswer:"
    return Example(prompt, str(value), _num_distractors(rng, value))  # type: ignore[arg-type]


def unit_conversion(rng: random.Random) -> Example:
    units = [("hours", "minutes", 60), ("weeks", "days", 7), ("days", "hours", 24), ("meters", "centimeters", 100), ("dozens", "items", 12), ("minutes", "seconds", 60)]
    big, small, factor = rng.choice(units)
    n = rng.randint(1, 9)
    value = n * factor
    prompt = _q(rng, ["How many {s} are in {n} {b}?", "Convert {n} {b} to {s}.", "{n} {b} is how many {s}?"], s=small, n=n, b=big)
    return Example(prompt, str(value), _distinct(rng, str(value), lambda: str(rng.randint(1, 9) * factor + rng.choice([0, factor, -factor]) + rng.choice([0, 1, -1, 10]))))  # type: ignore[arg-type]


DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def calendar(rng: random.Random) -> Example:
    d, k = rng.randrange(7), rng.randint(1, 6)
    forward = rng.random() < 0.6
    value = DAYS[(d + k) % 7] if forward else DAYS[(d - k) % 7]
    if forward:
        prompt = _q(rng, ["What day comes {k} days after {d}?", "Today is {d}. What day will it be in {k} days?", "If it is {d}, which day is {k} days later?"], k=k, d=DAYS[d])
    else:
        prompt = _q(rng, ["What day was {k} days before {d}?", "Today is {d}. What day was it {k} days ago?"], k=k, d=DAYS[d])
    return Example(prompt, value, _distinct(rng, value, lambda: rng.choice(DAYS)))  # type: ignore[arg-type]


# ---------------------------------------------------------------- code
VARS = ["x", "y", "n", "a", "b", "k", "total", "count"]


def code_output(rng: random.Random) -> Example:
    v1, v2 = rng.sample(VARS, 2)
    a, b = rng.randint(1, 20), rng.randint(1, 9)
    kind = rng.randrange(4)
    if kind == 0:
        code, value = f"{v1} = {a}\n{v2} = {v1} + {b}\nprint({v2})", str(a + b)
    elif kind == 1:
        code, value = f"{v1} = {a}\n{v1} = {v1} * 2\nprint({v1})", str(a * 2)
    elif kind == 2:
        word = rng.choice(["ab", "hi", "ok", "xy", "no"])
        m = rng.randint(2, 4)
        code, value = f'{v1} = "{word}"\nprint({v1} * {m})', word * m
    else:
        code, value = f"{v1} = {a}\nif {v1} > {b * 2}:\n    print(\"big\")\nelse:\n    print(\"small\")", "big" if a > b * 2 else "small"
    prompt = rng.choice(["What does this Python program print?\n{c}", "Predict the output of the code.\n{c}", "Python:\n{c}\nWhat is printed?"]).format(c=code) + "\nAnswer:"
    if value in ("big", "small"):
        distractors: tuple[str, ...] = ("small" if value == "big" else "big", "none", str(a))
    elif kind == 2:
        unit, m = value[:2], len(value) // 2
        others = [x for x in ("ab", "hi", "ok", "xy", "no") if x != unit]
        distractors = _distinct(rng, value, lambda: rng.choice([rng.choice(others) * m, unit[::-1] * m, " ".join([unit] * m), f"{unit} * {m}"]))
    else:
        distractors = _num_distractors(rng, int(value))
    return Example(prompt, value, distractors)  # type: ignore[arg-type]


# ---------------------------------------------------------------- logic
def boolean_expr(rng: random.Random) -> Example:
    def atom() -> tuple[str, bool]:
        v = rng.random() < 0.5
        if rng.random() < 0.35:
            return f"not {v}", not v
        return str(v), v

    (s1, v1), (s2, v2) = atom(), atom()
    op = rng.choice(["and", "or"])
    expr, value = f"{s1} {op} {s2}", (v1 and v2) if op == "and" else (v1 or v2)
    if rng.random() < 0.4:
        s3, v3 = atom()
        op2 = rng.choice(["and", "or"])
        expr, value = f"({expr}) {op2} {s3}", (value and v3) if op2 == "and" else (value or v3)
    prompt = _q(rng, ["Evaluate the boolean expression: {e}", "What is the value of {e}?", "{e} is"], e=expr)
    ans = str(value)
    return Example(prompt, ans, (str(not value), "None", "Maybe"))


PEOPLE = ["Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Hugo"]
RELATIONS = [("taller", "tallest", "shortest"), ("older", "oldest", "youngest"), ("faster", "fastest", "slowest")]


def deduction(rng: random.Random) -> Example:
    p = rng.sample(PEOPLE, 3)  # p[0] > p[1] > p[2]
    comp, top, bottom = rng.choice(RELATIONS)
    facts = [f"{p[0]} is {comp} than {p[1]}.", f"{p[1]} is {comp} than {p[2]}."]
    rng.shuffle(facts)
    ask_top = rng.random() < 0.5
    q = f"Who is the {top if ask_top else bottom}?"
    value = p[0] if ask_top else p[2]
    prompt = rng.choice(["{f} {q}", "Facts: {f}\nQuestion: {q}", "{f} Based on this, {ql}"]).format(f=" ".join(facts), q=q, ql=q[0].lower() + q[1:]) + "\nAnswer:"
    others = [x for x in p if x != value] + [rng.choice([x for x in PEOPLE if x not in p])]
    return Example(prompt, value, tuple(others))  # type: ignore[arg-type]


# ---------------------------------------------------------------- algorithmic
def sorting(rng: random.Random) -> Example:
    n = rng.randint(3, 5)
    xs = rng.sample(range(1, 60), n)
    desc = rng.random() < 0.3
    value = ", ".join(str(x) for x in sorted(xs, reverse=desc))
    order = "descending" if desc else "ascending"
    prompt = _q(rng, ["Sort in {o} order: {l}", "Sort these numbers from {w}: {l}", "Put {l} in {o} order."], o=order, w="largest to smallest" if desc else "smallest to largest", l=", ".join(map(str, xs)))

    def shuffled() -> str:
        ys = list(xs)
        rng.shuffle(ys)
        return ", ".join(map(str, ys))

    return Example(prompt, value, _distinct(rng, value, shuffled))  # type: ignore[arg-type]


ITEMS = ["cat", "dog", "pen", "cup", "hat", "box", "car", "sun", "map", "key", "bed", "egg", "fox", "owl", "ant", "bee"]


def counting(rng: random.Random) -> Example:
    n = rng.randint(2, 9)
    xs = [rng.choice(ITEMS) for _ in range(n)]
    if rng.random() < 0.5:
        prompt = _q(rng, ["How many items are in this list: {l}?", "Count the words: {l}", "Number of items in [{l}]?"], l=", ".join(xs))
        value = n
    else:
        target = rng.choice(xs)
        prompt = _q(rng, ["How many times does {t} appear in: {l}?", "Count the {t} in: {l}"], t=target, l=", ".join(xs))
        value = xs.count(target)
    return Example(prompt, str(value), _distinct(rng, str(value), lambda: str(max(0, value + rng.choice([-2, -1, 1, 2, 3])))))  # type: ignore[arg-type]


# ---------------------------------------------------------------- instruction following
WORDS = ["river", "stone", "cloud", "apple", "tiger", "music", "light", "green", "table", "ocean", "paper", "chair", "bread", "plant", "storm", "honey", "glass", "smile", "night", "field"]


def formatting(rng: random.Random) -> Example:
    w = rng.choice(WORDS)
    kind = rng.randrange(4)
    if kind == 0:
        prompt, value = _q(rng, ["Write the word '{w}' in uppercase.", "Respond with {w} in capital letters only."], w=w), w.upper()
        d = (w, w.capitalize(), w.upper()[::-1])
    elif kind == 1:
        k = rng.randint(2, 4)
        prompt, value = _q(rng, ["Repeat the word '{w}' {k} times, separated by commas.", "Say {w} {k} times, comma separated."], w=w, k=k), ", ".join([w] * k)
        other = rng.choice([x for x in WORDS if x != w])
        d = ("; ".join([w] * k), " ".join([w] * k), ", ".join([other] * k))
    elif kind == 2:
        prompt, value = _q(rng, ["Wrap the word '{w}' in square brackets.", "Put {w} inside square brackets."], w=w), f"[{w}]"
        d = (f"({w})", w, f"{{{w}}}")
    else:
        w2 = rng.choice([x for x in WORDS if x != w])
        prompt, value = _q(rng, ["Join '{w}' and '{v}' with a hyphen.", "Combine {w} and {v} using a dash."], w=w, v=w2), f"{w}-{w2}"
        d = (f"{w2}-{w}", f"{w} {w2}", f"{w}{w2}")
    return Example(prompt, value, d)  # type: ignore[arg-type]


# ---------------------------------------------------------------- tool use
TOOLS = {
    "get_weather": ("city", "Get the current weather for a city"),
    "get_time": ("city", "Get the local time in a city"),
    "translate": ("text", "Translate a word to French"),
    "search_web": ("query", "Search the web"),
    "send_email": ("to", "Send an email to a person"),
}
CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Delhi", "Rome", "Quito", "Dakar", "Seoul"]
REQUESTS = {
    "get_weather": ["What is the weather in {v}?", "Is it raining in {v}?", "Tell me the forecast for {v}."],
    "get_time": ["What time is it in {v}?", "Tell me the local time in {v}."],
    "translate": ["Translate '{v}' to French.", "How do you say {v} in French?"],
    "search_web": ["Search the web for {v}.", "Look up {v} online."],
    "send_email": ["Send an email to {v}.", "Email {v} please."],
}


def _tool_value(tool: str, rng: random.Random) -> str:
    arg = TOOLS[tool][0]
    if arg == "city":
        return rng.choice(CITIES)
    if arg == "to":
        return rng.choice(NAMES)
    return rng.choice(WORDS)


def tool_call(rng: random.Random) -> Example:
    names = rng.sample(sorted(TOOLS), 3)
    tool = rng.choice(names)
    v = _tool_value(tool, rng)
    tool_list = "\n".join(f'- "{n}" (argument "{TOOLS[n][0]}"): {TOOLS[n][1]}' for n in names)
    request = rng.choice(REQUESTS[tool]).format(v=v)

    def call(n: str, val: str) -> str:
        return json.dumps({"name": n, "arguments": {TOOLS[n][0]: val}})

    prompt = rng.choice(["Tools:\n{t}\nRequest: {r}\nCall one tool as JSON.", "You can call these functions:\n{t}\nUser: {r}\nReply with a JSON function call."]).format(t=tool_list, r=request) + "\nAnswer:"
    value = call(tool, v)
    wrong_tools = [n for n in names if n != tool]
    other_value = _tool_value(tool, rng)
    third = call(tool, other_value) if other_value != v else json.dumps({"name": tool, "arguments": {}})
    d = (call(wrong_tools[0], v), call(wrong_tools[1], v), third)
    return Example(prompt, value, d)


# ---------------------------------------------------------------- knowledge
def fact_lookup(rng: random.Random) -> Example:
    c = rng.choice(KB.countries)
    attr = rng.choice(["capital", "language", "animal"])
    if attr == "capital":
        prompt, value = _q(rng, ["What is the capital of {c}?", "Name the capital city of {c}.", "{c} has its capital in which city?"], c=c.name), c.capital
        pool = [x.capital for x in KB.countries]
    elif attr == "language":
        prompt, value = _q(rng, ["Which language is spoken in {c}?", "What do people in {c} speak?"], c=c.name), c.language
        pool = KB.languages
    else:
        prompt, value = _q(rng, ["What is the national animal of {c}?", "Which animal is the symbol of {c}?"], c=c.name), c.animal
        pool = KB.animals
    return Example(prompt, value, _distinct(rng, value, lambda: rng.choice(pool)))  # type: ignore[arg-type]


# ---------------------------------------------------------------- held-out families (no expert trains on these)
def compare_numbers(rng: random.Random) -> Example:
    a, b = rng.sample(range(1, 100), 2)
    big = rng.random() < 0.6
    value = str(max(a, b) if big else min(a, b))
    prompt = _q(rng, ["Which is {w}: {a} or {b}?", "Pick the {w} number: {a}, {b}."], w="larger" if big else "smaller", a=a, b=b)
    return Example(prompt, value, _distinct(rng, value, lambda: str(rng.choice([a, b, a + b, a + 1, b + 1, rng.randint(1, 199)]))))  # type: ignore[arg-type]


def parity(rng: random.Random) -> Example:
    n = rng.randint(0, 999)
    value = "even" if n % 2 == 0 else "odd"
    prompt = _q(rng, ["Is {n} even or odd?", "Is the number {n} odd or even?"], n=n)
    return Example(prompt, value, ("odd" if value == "even" else "even", "prime", "zero"))


def sequence(rng: random.Random) -> Example:
    start, step = rng.randint(0, 20), rng.randint(1, 9)
    xs = [start + i * step for i in range(4)]
    value = start + 4 * step
    prompt = _q(rng, ["What comes next: {l}, ?", "Continue the sequence: {l},", "Next number after {l}?"], l=", ".join(map(str, xs)))
    return Example(prompt, str(value), _num_distractors(rng, value))  # type: ignore[arg-type]


def reverse_list(rng: random.Random) -> Example:
    xs = rng.sample(ITEMS, rng.randint(3, 4))
    value = ", ".join(reversed(xs))
    prompt = _q(rng, ["Reverse the list: {l}", "Write these in reverse order: {l}"], l=", ".join(xs))

    def shuffled() -> str:
        ys = list(xs)
        rng.shuffle(ys)
        return ", ".join(ys)

    return Example(prompt, value, _distinct(rng, value, shuffled))  # type: ignore[arg-type]


FAMILIES: dict[str, Callable[[random.Random], Example]] = {
    "arithmetic": arithmetic,
    "word_problem": word_problem,
    "unit_conversion": unit_conversion,
    "calendar": calendar,
    "code_output": code_output,
    "boolean_expr": boolean_expr,
    "deduction": deduction,
    "sorting": sorting,
    "counting": counting,
    "formatting": formatting,
    "tool_call": tool_call,
    "fact_lookup": fact_lookup,
    "compare_numbers": compare_numbers,
    "parity": parity,
    "sequence": sequence,
    "reverse_list": reverse_list,
}

# Each expert is trained on one family group; HELD_OUT families are in no group.
EXPERTS: dict[str, list[str]] = {
    "math": ["arithmetic", "word_problem"],
    "time": ["unit_conversion", "calendar"],
    "code": ["code_output"],
    "logic": ["boolean_expr", "deduction"],
    "algo": ["sorting", "counting"],
    "format": ["formatting"],
    "tools": ["tool_call"],
    "facts": ["fact_lookup"],
}
HELD_IN = [f for fs in EXPERTS.values() for f in fs]
HELD_OUT = [f for f in FAMILIES if f not in HELD_IN]


# ---------------------------------------------------------------- composition families (held out, two skills at once)
# Each needs two experts' skills in one answer. They are in neither FAMILIES nor any expert group, so nothing
# built from FAMILIES (tokenizer corpus, pretraining, expert data, data/test.csv) changes; build_data.py writes
# them to eval/held_out_compose.csv only. Answers use only token forms the base already saw in pretraining
# (digits, brackets, hyphens, ", "-repetition of a word that starts with "▁", tool JSON with known names/keys).
# MC distractors mix "right skill A, wrong skill B" and the reverse, so one expert alone cannot pick the answer;
# a right-value-wrong-format distractor has the answer's token count (no shorter choice to win by length).
def _word_problem_text(rng: random.Random) -> tuple[str, int]:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 20), rng.randint(1, 9)
    kind = rng.randrange(3)
    if kind == 0:
        return f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b
    if kind == 1:
        a = max(a, b + 1)
        return f"{name} had {a} {thing} and gave away {b}. How many {thing} are left?", a - b
    per = a % 6 + 2
    return f"{name} buys {b} bags with {per} {thing} in each bag. How many {thing} is that in total?", b * per


def bracket_word_problem(rng: random.Random) -> Example:
    """math + format: a word problem whose number must come wrapped in square brackets."""
    text, value = _word_problem_text(rng)
    prompt = _q(rng, ["{t} Wrap the number in square brackets.", "{t} Put the number inside square brackets.", "Word problem: {t} Wrap the number in square brackets."], t=text)
    answer = f"[{value}]"
    wrong = _distinct(rng, answer, lambda: f"[{max(0, value + rng.choice([-10, -2, -1, 1, 2, 10, 3, -3]))}]", 2)
    return Example(prompt, answer, (f"({value})", *wrong))  # type: ignore[arg-type]


def sorted_dash(rng: random.Random) -> Example:
    """algo + format: sort a list, then join the numbers with hyphens instead of commas."""
    xs = rng.sample(range(1, 60), rng.randint(3, 5))
    desc = rng.random() < 0.3
    ys = sorted(xs, reverse=desc)
    answer = "-".join(map(str, ys))
    prompt = _q(
        rng,
        ["Sort in {o} order: {l}. Combine the numbers using a dash.", "Put {l} in {o} order. Combine the numbers using a dash.", "Sort these numbers from {w}: {l}. Join the numbers with a hyphen."],
        o="descending" if desc else "ascending",
        w="largest to smallest" if desc else "smallest to largest",
        l=", ".join(map(str, xs)),
    )

    def shuffled_dash() -> str:
        zs = list(xs)
        rng.shuffle(zs)
        return "-".join(map(str, zs))

    return Example(prompt, answer, (", ".join(map(str, ys)), *_distinct(rng, answer, shuffled_dash, 2)))  # type: ignore[arg-type]


def fact_repeat(rng: random.Random) -> Example:
    """facts + format: recall a fact about an invented country and repeat it k times, comma separated."""
    c = rng.choice(KB.countries)
    attr = rng.choice(["capital", "language", "animal"])
    what, value, pool = {
        "capital": ("the capital of {c}", c.capital, [x.capital for x in KB.countries]),
        "language": ("the language of {c}", c.language, KB.languages),
        "animal": ("the national animal of {c}", c.animal, KB.animals),
    }[attr]
    k = rng.randint(2, 4)
    prompt = _q(rng, ["Say {x} {k} times, comma separated.", "Repeat {x} {k} times, separated by commas."], x=what.format(c=c.name), k=k)
    answer = ", ".join([value] * k)
    wrong = _distinct(rng, answer, lambda: ", ".join([rng.choice(pool)] * k), 2)
    return Example(prompt, answer, (". ".join([value] * k), *wrong))  # type: ignore[arg-type]


def calendar_repeat(rng: random.Random) -> Example:
    """time + format: a day-arithmetic question whose answer is repeated k times, comma separated."""
    d, k = rng.randrange(7), rng.randint(1, 6)
    forward = rng.random() < 0.6
    value = DAYS[(d + k) % 7] if forward else DAYS[(d - k) % 7]
    q = (f"What day comes {k} days after {DAYS[d]}?" if forward else f"What day was {k} days before {DAYS[d]}?")
    m = rng.randint(2, 4)
    prompt = _q(rng, ["{q} Say the day {m} times, comma separated.", "{q} Repeat the day {m} times, separated by commas."], q=q, m=m)
    answer = ", ".join([value] * m)
    wrong = _distinct(rng, answer, lambda: ", ".join([rng.choice(DAYS)] * m), 2)
    return Example(prompt, answer, (". ".join([value] * m), *wrong))  # type: ignore[arg-type]


def email_reader(rng: random.Random) -> Example:
    """time + tools: convert three durations to a common unit, then call send_email for the longest one."""
    big, small, factor = rng.choice([("hours", "minutes", 60), ("days", "hours", 24), ("weeks", "days", 7), ("minutes", "seconds", 60)])
    people = rng.sample(NAMES, 3)
    while True:
        # one duration in the big unit, the others in the small unit; all distinct once converted
        n = rng.randint(1, 5)
        smalls = [rng.randint(max(1, factor * n // 2), factor * n * 2) for _ in range(2)]
        totals = [n * factor, *smalls]
        if len(set(totals)) == 3:
            break
    order = [0, 1, 2]
    rng.shuffle(order)
    parts = [f"{people[i]} read for {n} {big}" if i == 0 else f"{people[i]} read for {smalls[i - 1]} {small}" for i in order]
    story = f"{parts[0]}, {parts[1]} and {parts[2]}."
    winner = people[max(range(3), key=lambda i: totals[i])]
    names = rng.sample([t for t in sorted(TOOLS) if t != "send_email"], 2) + ["send_email"]
    rng.shuffle(names)
    tool_list = "\n".join(f'- "{t}" (argument "{TOOLS[t][0]}"): {TOOLS[t][1]}' for t in names)
    request = rng.choice(["Send an email to the person who read the largest number of {s}.", "Email the person who read for the largest number of {s}."]).format(s=small)
    prompt = rng.choice(["Tools:\n{t}\n{st}\nRequest: {r}\nCall one tool as JSON.", "You can call these functions:\n{t}\n{st}\nUser: {r}\nReply with a JSON function call."]).format(t=tool_list, st=story, r=request) + "\nAnswer:"

    def call(t: str, v: str) -> str:
        return json.dumps({"name": t, "arguments": {TOOLS[t][0]: v}})

    losers = [p for p in people if p != winner]
    wrong_tool = next(t for t in names if t != "send_email")
    return Example(prompt, call("send_email", winner), (call("send_email", losers[0]), call("send_email", losers[1]), call(wrong_tool, winner)))


def code_plus(rng: random.Random) -> Example:
    """code + math: run a short program in your head, then add to or subtract from what it prints."""
    v1, v2 = rng.sample(VARS, 2)
    a, b = rng.randint(1, 20), rng.randint(1, 9)
    if rng.random() < 0.5:
        code, printed = f"{v1} = {a}\n{v2} = {v1} + {b}\nprint({v2})", a + b
    else:
        code, printed = f"{v1} = {a}\n{v1} = {v1} * 2\nprint({v1})", a * 2
    k = rng.randint(2, 19)
    minus = rng.random() < 0.4 and printed > k
    value = printed - k if minus else printed + k
    prompt = rng.choice(["What does this Python program print?\n{c}\nWhat is the printed number {op} {k}?", "Python:\n{c}\nWhat is the printed number {op} {k}?"]).format(c=code, op="minus" if minus else "plus", k=k) + "\nAnswer:"
    answer = str(value)
    pending = [str(printed)]  # the code-only answer (no arithmetic step) comes first, unless prefix-related

    def candidate() -> str:
        return pending.pop() if pending else str(max(0, value + rng.choice([-10, -2, -1, 1, 2, 10, 3, -3, 11, -11])))

    return Example(prompt, answer, _distinct(rng, answer, candidate))  # type: ignore[arg-type]


COMPOSITION_FAMILIES: dict[str, Callable[[random.Random], Example]] = {
    "bracket_word_problem": bracket_word_problem,
    "sorted_dash": sorted_dash,
    "fact_repeat": fact_repeat,
    "calendar_repeat": calendar_repeat,
    "email_reader": email_reader,
    "code_plus": code_plus,
}
# family -> the two experts whose skills it needs (none of these families is in FAMILIES, EXPERTS, HELD_IN or HELD_OUT)
COMPOSITION: dict[str, tuple[str, str]] = {
    "bracket_word_problem": ("math", "format"),
    "sorted_dash": ("algo", "format"),
    "fact_repeat": ("facts", "format"),
    "calendar_repeat": ("time", "format"),
    "email_reader": ("time", "tools"),
    "code_plus": ("code", "math"),
}

// tools/standin-7b/peer_transformers.py (the transformers eager baseline of issue 10) against
// this CLI: on the tiny random Mistral with two PEFT experts, the CLI with method `linear` in
// fp32 and the peer in fp32 must give the same predictions — the same merge (mean of
// (alpha/r)·B·A), the same choice tokens ("separate") and KV-cache reuse, the same greedy
// generation with left padding. The tiny base's sliding window of 4 also makes the peer's
// cache cropping work through transformers' sliding-window cache layers. A second check parses
// every answer_choices cell of the starter kit's test.csv with the peer's Python port of
// parseChoiceLiteral and with @merge/eval. Needs <repo>/.venv/bin/python (PEER_PYTHON, else
// python3) with torch, transformers and peft; skipped, saying so, without one.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCompetitionCsv } from "@merge/eval";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, TINY_BASE, TINY_CSV, makeTinySetup, runCli } from "./helpers.js";

const PEER = join(REPO, "tools", "standin-7b", "peer_transformers.py");
const STARTER_KIT_CSV = join(REPO, "..", "shared", "starter-kit", "test.csv");

function findPython(): string | undefined {
  const candidates = [process.env.PEER_PYTHON, join(REPO, ".venv", "bin", "python"), "python3"];
  for (const py of candidates) {
    if (!py || (py.includes("/") && !existsSync(py))) continue;
    const r = spawnSync(py, ["-c", "import torch, transformers, peft, tokenizers"]);
    if (r.status === 0) return py;
  }
  return undefined;
}
const PYTHON = findPython();

// TINY_CSV plus rows whose choices need the literal parser's escapes and a multi-line prompt.
const CSV = `${TINY_CSV}q2,"Pick one
of these:",multiple_choice,"['caf\\u00e9', ""a, b"", 'tab\\there', 'x' 'y']"
g3,"Two
lines",generation,
`;

function predictions(text: string): Record<string, string> {
  const rows = parse(text, { columns: true }) as Array<{ id: string; prediction: string }>;
  return Object.fromEntries(rows.map((r) => [r.id, r.prediction]));
}

describe.skipIf(PYTHON === undefined)(
  `peer_transformers.py against the CLI${PYTHON === undefined ? " (skipped: no Python with torch, transformers and peft; set PEER_PYTHON)" : ""}`,
  () => {
    let dir = "";
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "peer-transformers-"));
    });
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("fp32: the same answers and generations as the CLI's linear merge", async () => {
      const { config, out } = await makeTinySetup(dir);
      await writeFile(join(dir, "data.csv"), CSV);
      const text = (await readFile(config, "utf8")).replace("method: osm", "method: linear");
      await writeFile(config, text);

      const cli = await runCli(["--config", config, "--no-progress"]);
      expect(cli.code, cli.stderr).toBe(0);
      const want = predictions(await readFile(out, "utf8"));

      const peerOut = join(dir, "peer.csv");
      const peerReport = join(dir, "peer.json");
      const r = spawnSync(
        PYTHON!,
        [
          PEER,
          ...[
            "--base",
            TINY_BASE,
            "--experts",
            join(dir, "experts", "a"),
            join(dir, "experts", "b"),
          ],
          ...["--data", join(dir, "data.csv"), "--out", peerOut, "--report", peerReport],
          ...["--device", "cpu", "--dtype", "fp32", "--threads", "1"],
          ...["--batch-size", "2", "--max-new-tokens", "8"],
        ],
        { encoding: "utf8" },
      );
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      const got = predictions(await readFile(peerOut, "utf8"));
      expect(Object.keys(got)).toEqual(Object.keys(want)); // every id, in input order
      expect(got).toEqual(want);

      const report = JSON.parse(await readFile(peerReport, "utf8"));
      expect(report).toMatchObject({
        rows: 7,
        multipleChoiceRows: 3,
        generationRows: 4,
        batchSize: 2,
        dtype: "fp32",
        attnImplementation: "eager",
      });
      expect(Object.keys(report.choiceScores)).toEqual(["q0", "q1", "q2"]);
      expect(report.choiceScores.q2).toHaveLength(4); // 'x' 'y' is one choice, "xy"
      // The tiny base's sliding window (4) is shorter than its prompts: every row copies.
      expect(report.kvCacheReuse).toMatchObject({ crop: 0, copy: 3 });
      for (const k of ["load", "merge", "multipleChoice", "generation", "eval"]) {
        expect(report.seconds[k]).toBeGreaterThanOrEqual(0);
      }
      expect(report.tokens.generated).toBeGreaterThan(0);
      expect(report.tokens.generated).toBeLessThanOrEqual(4 * 8);
    });

    it("--limit's subset: the first rows of each type, in proportion, in file order", async () => {
      const data = join(dir, "limit.csv");
      await writeFile(data, CSV);
      // take_subset needs no torch: import the module and call it (no model run, fast).
      const script = [
        "import json, sys",
        `sys.path.insert(0, ${JSON.stringify(join(REPO, "tools", "standin-7b"))})`,
        "import peer_transformers as p",
        "rows, _ = p.read_rows(__import__('pathlib').Path(sys.argv[1]))",
        "print(json.dumps({n: [r['id'] for r in p.take_subset(rows, n)] for n in (1, 4, 6, 7, 50)}))",
      ].join("\n");
      const r = spawnSync(PYTHON!, ["-c", script, data], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      // 3 of the 7 rows are multiple choice (q0 q1 q2), 4 generation (g0 g1 g2 g3):
      // round(n · 3/7) multiple-choice rows (halves up), the rest generation rows.
      expect(JSON.parse(r.stdout)).toEqual({
        "1": ["g0"],
        "4": ["q0", "g0", "q1", "g1"],
        "6": ["q0", "g0", "q1", "g1", "g2", "q2"],
        "7": ["q0", "g0", "q1", "g1", "g2", "q2", "g3"],
        "50": ["q0", "g0", "q1", "g1", "g2", "q2", "g3"],
      });
    });

    it("a bad answer_choices cell stops with one error line naming the row", async () => {
      const data = join(dir, "bad.csv");
      await writeFile(
        data,
        "id,input,eval_type,answer_choices\na,hi,multiple_choice,\"['x', 2]\"\n",
      );
      const r = spawnSync(
        PYTHON!,
        [PEER, "--base", TINY_BASE, "--experts", join(dir, "experts", "a"), "--data", data]
          .concat(["--out", join(dir, "bad-out.csv"), "--report", join(dir, "bad.json")])
          .concat(["--device", "cpu"]),
        { encoding: "utf8" },
      );
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        /^error: .*bad\.csv: row 1 \(id a\): answer_choices: .*at character 6/m,
      );
      expect(existsSync(join(dir, "bad-out.csv"))).toBe(false);
    });

    it.skipIf(!existsSync(STARTER_KIT_CSV))(
      `parses the starter kit's answer_choices as @merge/eval does${existsSync(STARTER_KIT_CSV) ? "" : " (skipped: ../shared/starter-kit/test.csv not found)"}`,
      async () => {
        const script = [
          "import json, sys",
          `sys.path.insert(0, ${JSON.stringify(join(REPO, "tools", "standin-7b"))})`,
          "import peer_transformers as p",
          "rows, _ = p.read_rows(__import__('pathlib').Path(sys.argv[1]))",
          "print(json.dumps([[r['id'], r['eval_type'], r['input'], r['choices']] for r in rows]))",
        ].join("\n");
        const r = spawnSync(PYTHON!, ["-c", script, STARTER_KIT_CSV], {
          encoding: "utf8",
          maxBuffer: 64 << 20,
        });
        expect(r.status, r.stderr).toBe(0);
        const got = JSON.parse(r.stdout) as Array<[string, string, string, string[]]>;
        const ds = await readCompetitionCsv(STARTER_KIT_CSV);
        const want = ds.entries.map((e) => {
          if (e.kind !== "ok") throw new Error(`bad row ${e.row.id}`);
          return [e.row.id, e.row.evalType, e.row.input, e.row.choices];
        });
        expect(got).toHaveLength(807);
        expect(got).toEqual(want);
      },
    );
  },
);

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exactMatch, parseChoiceLiteral, rougeScores } from "@merge/eval";
import { SafetensorsFile, bf16ToF32, f32ToBf16, writeSafetensors } from "@merge/tensor-io";
import check from "./io-check.cjs";

await check(
  { SafetensorsFile, bf16ToF32, f32ToBf16, writeSafetensors },
  { exactMatch, parseChoiceLiteral, rougeScores },
  { mkdtempSync, rmSync, tmpdir, join },
  "esm",
);

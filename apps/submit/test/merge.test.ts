import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  PeftAdapter,
  SafetensorsCheckpoint,
  SafetensorsFile,
  writeSafetensors,
} from "@merge/tensor-io";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExpertMismatchError, InternalError } from "../src/errors.js";
import { type LoadedExpert, checkAllMerged, planMerge } from "../src/merge.js";
import { TINY_BASE, writeTinyAdapter } from "./helpers.js";

let base: SafetensorsCheckpoint;
const opened: PeftAdapter[] = [];

async function expert(label: string, dir: string): Promise<LoadedExpert> {
  const adapter = await PeftAdapter.open(dir);
  opened.push(adapter);
  return { label, adapter };
}

beforeAll(async () => {
  base = await SafetensorsCheckpoint.open(TINY_BASE);
});
afterAll(async () => {
  for (const a of opened) await a.close();
  await base.close();
});

describe("planMerge", () => {
  it("plans every projection module some expert adapts, sorted, with the base shape", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-plan-"));
    await writeTinyAdapter(join(dir, "a"), 1, [
      "model.layers.1.mlp.down_proj",
      "model.layers.0.self_attn.q_proj",
    ]);
    const plan = await planMerge(base, "tiny", [await expert("a", join(dir, "a"))]);
    expect([...plan.keys()]).toEqual([
      "model.layers.0.self_attn.q_proj",
      "model.layers.1.mlp.down_proj",
    ]);
    const [outF, inF] = base.info("model.layers.1.mlp.down_proj.weight").shape;
    expect(plan.get("model.layers.1.mlp.down_proj")).toEqual({
      outFeatures: outF,
      inFeatures: inF,
    });
  });

  it("refuses a LoRA on lm_head (a 2-D base weight the ONNX build takes no delta for)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-plan-"));
    expect(base.info("lm_head.weight").shape).toHaveLength(2);
    await writeTinyAdapter(join(dir, "head"), 2, ["model.layers.0.self_attn.q_proj", "lm_head"]);
    const e = await expert("head-expert", join(dir, "head"));
    const err = await planMerge(base, "tiny", [e]).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ExpertMismatchError);
    expect((err as Error).message).toMatch(
      /expert head-expert: LoRA on module lm_head cannot be merged/,
    );
  });

  it("refuses an adapter with tensors that are not LoRA factors (modules_to_save)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-plan-"));
    const folder = join(dir, "saved");
    await writeTinyAdapter(folder, 3, ["model.layers.0.self_attn.q_proj"]);
    // Rewrite the weights with a full lm_head copy added, as PEFT's modules_to_save stores it.
    const path = join(folder, "adapter_model.safetensors");
    const file = await SafetensorsFile.open(path);
    const tensors = [];
    for (const info of file.tensors.values()) {
      tensors.push({
        name: info.name,
        dtype: info.dtype,
        shape: [...info.shape],
        data: await file.readBytes(info.name),
      });
    }
    await file.close();
    tensors.push({
      name: "base_model.model.lm_head.modules_to_save.default.weight",
      dtype: "F32" as const,
      shape: [2, 2],
      data: new Uint8Array(16),
    });
    await writeSafetensors(path, tensors);
    const e = await expert("mts", folder);
    await expect(planMerge(base, "tiny", [e])).rejects.toThrow(
      /expert mts: the adapter holds 1 tensor that is not LoRA factors .*lm_head\.modules_to_save/,
    );
  });
});

describe("checkAllMerged", () => {
  it("passes when every planned module was merged, fails naming both counts otherwise", () => {
    const plan = new Map([
      ["m.a", { outFeatures: 1, inFeatures: 1 }],
      ["m.b", { outFeatures: 1, inFeatures: 1 }],
    ]);
    expect(() => checkAllMerged(plan, { modules: 2, ms: 0 })).not.toThrow();
    expect(() => checkAllMerged(plan, { modules: 1, ms: 0 })).toThrow(InternalError);
    expect(() => checkAllMerged(plan, { modules: 1, ms: 0 })).toThrow(
      /applied 1 merged module, the merge plan has 2/,
    );
  });
});

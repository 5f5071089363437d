import { LoraError } from "./errors.js";
import { type LoraModule, validateLoraModule } from "./module.js";

/** One target module across all experts; `experts[i]` is null when expert i lacks it. */
export interface ModuleGroup {
  module: string;
  outFeatures: number;
  inFeatures: number;
  experts: Array<LoraModule | null>;
}

/**
 * Groups experts' modules by canonical module name ("model.layers.3.self_attn.q_proj"),
 * sorted by name. Experts may have different ranks and different target-module sets: a module
 * an expert lacks becomes null (zero contribution). Shapes must agree across experts.
 */
export function groupByModule(
  experts: ReadonlyArray<ReadonlyMap<string, LoraModule> | Readonly<Record<string, LoraModule>>>,
): ModuleGroup[] {
  const maps = experts.map((e) =>
    e instanceof Map ? (e as ReadonlyMap<string, LoraModule>) : new Map(Object.entries(e)),
  );
  const names = new Set<string>();
  for (const m of maps) for (const k of m.keys()) names.add(k);
  return [...names].sort().map((module) => {
    let shape: { out: number; in: number; from: number } | undefined;
    const slots = maps.map((m, i) => {
      const lora = m.get(module);
      if (lora === undefined) return null;
      validateLoraModule(lora, `${module} (expert ${i})`);
      if (shape === undefined) shape = { out: lora.outFeatures, in: lora.inFeatures, from: i };
      else if (lora.outFeatures !== shape.out || lora.inFeatures !== shape.in) {
        throw new LoraError(
          `expert ${i} is ${lora.outFeatures}×${lora.inFeatures} but expert ${shape.from} is ${shape.out}×${shape.in}`,
          module,
        );
      }
      return lora;
    });
    return { module, outFeatures: shape!.out, inFeatures: shape!.in, experts: slots };
  });
}

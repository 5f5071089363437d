// Typechecked (not run) under module/moduleResolution nodenext as an ES module.
import { DEFAULT_STRATEGY, type MergeResult, getStrategy } from "@merge/strategies";
import { parseChoiceLiteral } from "@merge/eval";
import { f32ToBf16 } from "@merge/tensor-io";

const name: string = DEFAULT_STRATEGY;
export const kind: MergeResult["kind"] = getStrategy(name).resultKind;
export const choices: string[] = parseChoiceLiteral("['a']");
export const bits: Uint16Array = f32ToBf16(new Float32Array(1));
// @ts-expect-error the types are real, not `any`: getStrategy takes a string
getStrategy(1);

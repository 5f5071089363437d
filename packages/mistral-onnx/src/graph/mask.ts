import type { GraphContext } from "./context.js";

/** Added to the scores of masked keys (in float32). Finite, so fully masked (padding) rows stay NaN-free. */
const MASKED = -1e30;
/**
 * The same in float16, for GroupQueryAttention's bias in fp16 models: −1e30 would be −∞ there
 * and turn fully masked rows into NaN. e^(−10⁴) is 0 in float32 as e^(−10³⁰) is.
 */
const MASKED_F16 = -1e4;

/**
 * The attention bias [B,1,S,T] in float32: causal by index in the padded sequence (as
 * transformers does), the sliding window when the model has one, and the padding mask.
 * `inModelDtype`: the bias as the model's element type (GroupQueryAttention wants it so).
 */
export function attentionBias(
  c: GraphContext,
  inputIds: string,
  attnMask: string,
  slidingWindow: number | null,
  inModelDtype = false,
): string {
  const { g, i64, unsqueeze } = c;
  const S1 = g.op1("Slice", [g.op1("Shape", [inputIds]), i64([1]), i64([2])]);
  const T1 = g.op1("Slice", [g.op1("Shape", [attnMask]), i64([1]), i64([2])]);
  const P1 = g.op1("Sub", [T1, S1]);
  const squeeze = (x: string) => g.op1("Squeeze", [x, i64([0])]);
  const T = squeeze(T1);
  const P = squeeze(P1);
  const one = g.constant("int64", [1], []);
  const zero = g.constant("int64", [0], []);
  const kIdx = unsqueeze(g.op1("Range", [zero, T, one]), [0]); // [1,T]
  const qIdx = unsqueeze(g.op1("Range", [P, T, one]), [1]); // [S,1]
  let allowed = g.op1("LessOrEqual", [kIdx, qIdx]); // [S,T]
  if (slidingWindow !== null) {
    const lower = g.op1("Sub", [qIdx, g.constant("int64", [slidingWindow], [])]);
    allowed = g.op1("And", [allowed, g.op1("Greater", [kIdx, lower])]);
  }
  const padOk = unsqueeze(g.op1("Cast", [attnMask], { attrs: { to: { int: 9 } } }), [1, 2]); // [B,1,1,T]
  const allowed4 = g.op1("And", [unsqueeze(allowed, [0, 1]), padOk]);
  if (inModelDtype && c.dtype === "fp16") {
    return c.toModel(g.op1("Where", [allowed4, c.f32(0), c.f32(MASKED_F16)]));
  }
  return g.op1("Where", [allowed4, c.f32(0), c.f32(MASKED)]);
}

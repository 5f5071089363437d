import type { RoutedBranch } from "../weights.js";
import { type GraphContext, toBytes } from "./context.js";

/** Added to the scores of absent experts: finite, so softmax stays NaN-free. */
const ABSENT = -1e30;

/**
 * The routed side branch of one fused linear, y_side = Σ_g gate_g(x) · B_g A_g x, with standard
 * ONNX ops so it runs on every execution provider and per token (no state: the KV cache is
 * untouched). Shapes: x [B,S,in] → z = x·Aᵀ [B,S,R] → per-group scores [B,S,M,E] → gates
 * [B,S,M,E] → gates spread back over each group's columns [B,S,R] → (z ∘ gates)·Bᵀ [B,S,out].
 * The router runs in float32 whatever the model dtype.
 */
export async function routedBranch(
  c: GraphContext,
  x: string,
  name: string,
  rb: RoutedBranch,
  inF: number,
  sumOut: number,
): Promise<string> {
  const { g, elem, bytes, toF32, toModel, i64, f32 } = c;
  const { router, rank: R, modules: M, experts: E } = rb;
  const G = M * E;

  const aT = await g.weight(`${name}.routed_A_T`, elem, [inF, R], bytes(rb.aT));
  const bT = await g.weight(`${name}.routed_B_T`, elem, [R, sumOut], bytes(rb.bT));
  const z = toF32(g.op1("MatMul", [x, aT])); // [B,S,R]

  // Column → group indicator (R × G) and its transpose; "first" keeps each group's top direction.
  const member = new Float32Array(R * G);
  const firstOnly = new Float32Array(R * G);
  const absent: number[] = [];
  const liftScale: number[] = [];
  for (let grp = 0; grp < G; grp++) {
    const r0 = rb.groupStart[grp] as number;
    const r = rb.groupRank[grp] as number;
    for (let c = r0; c < r0 + r; c++) member[c * G + grp] = 1;
    if (r > 0) firstOnly[r0 * G + grp] = 1;
    absent.push(r > 0 ? 0 : ABSENT);
    liftScale.push(r > 0 ? inF / r : 0);
  }
  const memberT = new Float32Array(G * R);
  for (let c = 0; c < R; c++)
    for (let grp = 0; grp < G; grp++) memberT[grp * R + c] = member[c * G + grp] as number;
  const spreadW = await g.weight(
    `${name}.routed_spread`,
    "float32",
    [G, R],
    toBytes(memberT, "fp32"),
  );

  let score: string; // [B,S,G]
  if (router.score === "first") {
    const firstW = await g.weight(
      `${name}.routed_first`,
      "float32",
      [R, G],
      toBytes(firstOnly, "fp32"),
    );
    score = g.op1("MatMul", [g.op1("Abs", [z]), firstW]);
  } else {
    const memberW = await g.weight(
      `${name}.routed_groups`,
      "float32",
      [R, G],
      toBytes(member, "fp32"),
    );
    const energy = g.op1("MatMul", [g.op1("Mul", [z, z]), memberW]);
    if (router.score === "norm") {
      score = g.op1("Sqrt", [energy]);
    } else {
      const x32 = toF32(x);
      const xx = g.op1("ReduceSum", [g.op1("Mul", [x32, x32]), i64([-1])], {
        attrs: { keepdims: { int: 1 } },
      });
      const frac = g.op1("Div", [energy, g.op1("Max", [xx, f32(1e-30)])]);
      score = g.op1("Mul", [frac, g.constant("float32", liftScale, [G])]);
    }
  }
  score = g.op1("Add", [score, g.constant("float32", absent, [G])]);
  const grouped = g.op1("Reshape", [score, i64([0, 0, M, E])]); // [B,S,M,E]

  let gates: string; // [B,S,M,E]
  if (router.gate === "margin") {
    const best = g.op1("ReduceMax", [grouped], {
      attrs: { axes: { ints: [-1] }, keepdims: { int: 1 } },
    });
    const isBest = g.op1("Cast", [g.op1("GreaterOrEqual", [grouped, best])], {
      attrs: { to: { int: 1 } },
    });
    let weight: string;
    if (E === 1) {
      weight = g.op1("Cast", [g.op1("Greater", [best, f32(0)])], { attrs: { to: { int: 1 } } });
    } else {
      const [top] = g.op("TopK", [grouped, i64([2])], {
        attrs: { axis: { int: -1 } },
        outputs: 2,
      }) as [string, string];
      const second = g.op1("Slice", [top, i64([1]), i64([2]), i64([-1])]);
      // 1 − second/best in [0, 1]; an absent runner-up (−1e30) gives 1, a zero best gives 0.
      const ratio = g.op1("Div", [second, g.op1("Max", [best, f32(1e-30)])]);
      const positive = g.op1("Cast", [g.op1("Greater", [best, f32(0)])], {
        attrs: { to: { int: 1 } },
      });
      weight = g.op1("Mul", [
        g.op1("Clip", [g.op1("Sub", [f32(1), ratio]), f32(0), f32(1)]),
        positive,
      ]);
    }
    gates = g.op1("Mul", [isBest, weight]);
  } else {
    const k = Math.min(router.topK, E);
    let logits = g.op1("Div", [grouped, f32(router.temperature)]);
    if (k < E) {
      const [top] = g.op("TopK", [logits, i64([k])], {
        attrs: { axis: { int: -1 } },
        outputs: 2,
      }) as [string, string];
      const kth = g.op1("Slice", [top, i64([k - 1]), i64([k]), i64([-1])]);
      logits = g.op1("Where", [g.op1("GreaterOrEqual", [logits, kth]), logits, f32(ABSENT)]);
    }
    gates = g.op1("Softmax", [logits], { attrs: { axis: { int: -1 } } });
    // All experts absent at a module: the softmax would be uniform over zero factors; harmless.
  }
  const flatGates = g.op1("Reshape", [gates, i64([0, 0, G])]);
  const colGates = g.op1("MatMul", [flatGates, spreadW]); // [B,S,R]
  return g.op1("MatMul", [toModel(g.op1("Mul", [z, colGates])), bT]);
}

// The same tiny merge, run by the ESM, CommonJS and browser consumers: one line of output that
// must be identical across the three. Receives the two exports the README example uses.
"use strict";

function factor(seed, length) {
  // Deterministic values in [-0.5, 0.5) from a small LCG; no library randomness involved.
  let s = seed >>> 0;
  return Float32Array.from({ length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

function expert(seed, rank) {
  return {
    A: factor(seed, rank * 5),
    B: factor(seed + 100, 6 * rank),
    rank,
    inFeatures: 5,
    outFeatures: 6,
    scale: 2,
  };
}

function digest(result) {
  // A weighted sum over every typed array in the result, in a fixed key order.
  let sum = 0;
  let n = 0;
  const visit = (v) => {
    if (v instanceof Float32Array || v instanceof Float64Array) {
      for (const x of v) sum += x * (1 + (n++ % 7));
    } else if (Array.isArray(v)) {
      for (const x of v) visit(x);
    } else if (v !== null && typeof v === "object") {
      for (const k of Object.keys(v).sort()) visit(v[k]);
    }
  };
  visit(result);
  return `${n}/${sum.toFixed(6)}`;
}

module.exports = function scenario({ getStrategy, DEFAULT_STRATEGY }) {
  const input = {
    module: "model.layers.0.self_attn.q_proj",
    outFeatures: 6,
    inFeatures: 5,
    experts: [expert(1, 2), expert(2, 3), null],
  };
  return [DEFAULT_STRATEGY, "linear", "ties"]
    .map((name) => {
      const result = getStrategy(name).merge(input, {}, { seed: 0 });
      return `${name}=${result.kind}:${digest(result)}`;
    })
    .join(" ");
};

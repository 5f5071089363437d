import type { SafetensorsCheckpoint } from "@merge/tensor-io";
import {
  checkDelta,
  type DeltaSource,
  foldDelta,
  type RoutedExpertDelta,
  type RouterSpec,
  type WeightDelta,
} from "./deltas.js";
import { MistralOnnxError } from "./errors.js";
import type { WeightEncoder } from "./encode/encoder.js";
import type { DeltaMode } from "./options.js";

/** One projection of a fused MatMul: its module name and output size. */
export interface ProjectionSpec {
  module: string; // "model.layers.0.self_attn.q_proj"
  out: number;
}

/** A LoRA side branch for a fused projection: y += (x·Aᵀ)·Bᵀ over the concatenated outputs. */
export interface SideBranch {
  rank: number;
  /** in × rank (Aᵀ of the stacked A factors). */
  aT: Float32Array;
  /** rank × sumOut (block-diagonal Bᵀ: each module's B only feeds its own outputs). */
  bT: Float32Array;
}

/**
 * Routed deltas of a fused projection: every (module, expert) pair is a group of columns of
 * the stacked factors; the router scores groups and gates them per token.
 */
export interface RoutedBranch {
  router: RouterSpec;
  /** Routed modules at this input (M) and expert slots per module (E); groups = M·E. */
  modules: number;
  experts: number;
  /** Total columns R = Σ ranks. */
  rank: number;
  /** in × R: the stacked A factors, transposed. */
  aT: Float32Array;
  /** R × sumOut: the stacked B factors, transposed, each feeding only its module's outputs. */
  bT: Float32Array;
  /** Per group (module-major): first column and rank; rank 0 = the expert lacks the module. */
  groupStart: Int32Array;
  groupRank: Int32Array;
}

export interface FusedWeight {
  /** sumOut × in: the projections' weights stacked by rows (the checkpoint's out × in layout). */
  w: Float32Array;
  side: SideBranch | null;
  routed: RoutedBranch | null;
}

type RoutedPart = {
  col: number;
  out: number;
  experts: Array<RoutedExpertDelta | null>;
  router: RouterSpec;
};

/**
 * Reads base weights from a checkpoint, checks each against the shape the caller derived from
 * config.json, applies deltas and stacks fused projections. (Only tensors the graph asks for are
 * read; extra tensors in the checkpoint are ignored.)
 */
export class WeightReader {
  constructor(
    private readonly ckpt: SafetensorsCheckpoint,
    private readonly modelDir: string,
    private readonly deltas: DeltaSource | undefined,
    private readonly deltaMode: DeltaMode,
    /**
     * Decodes BF16 and allocates weights the way the encoder's worker threads can read them
     * without a copy (absent: plain readF32).
     */
    private readonly encoder?: WeightEncoder,
  ) {}

  /** A base tensor as Float32, after checking it exists and has the expected shape. */
  async tensor(name: string, shape: number[]): Promise<Float32Array> {
    if (!this.ckpt.has(name)) {
      throw new MistralOnnxError(
        `missing weight "${name}" (expected shape [${shape.join(", ")}]) in ${this.modelDir}`,
        { tensor: name, file: this.modelDir },
      );
    }
    const info = this.ckpt.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new MistralOnnxError(
        `weight "${name}" has shape [${info.shape.join(", ")}], expected [${shape.join(", ")}] (from config.json)`,
        { tensor: name, file: info.file },
      );
    }
    if (!["F32", "F16", "BF16", "F64"].includes(info.dtype)) {
      throw new MistralOnnxError(
        `weight "${name}" has dtype ${info.dtype}, expected a float dtype`,
        {
          tensor: name,
          file: info.file,
        },
      );
    }
    return this.encoder ? this.readF32For(this.encoder, name) : this.ckpt.readF32(name);
  }

  /** readF32 into the encoder's memory (shared with its workers): BF16 and F32 without a copy. */
  private async readF32For(encoder: WeightEncoder, name: string): Promise<Float32Array> {
    const { dtype, byteLength } = this.ckpt.info(name);
    if (dtype === "BF16") {
      return encoder.readBf16AsF32(byteLength / 2, (t) => this.ckpt.readInto(name, t));
    }
    const out = encoder.allocF32(byteLength / 4);
    if (dtype === "F32") {
      await this.ckpt.readInto(name, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
      return out;
    }
    const w = await this.ckpt.readF32(name);
    const copy = encoder.allocF32(w.length);
    copy.set(w);
    return copy;
  }

  /**
   * The projections (each out_k × in in the checkpoint) stacked into one Σout × in matrix, deltas
   * folded in or returned as a side branch.
   */
  async fused(projections: ProjectionSpec[], inF: number): Promise<FusedWeight> {
    const sumOut = projections.reduce((a, p) => a + p.out, 0);
    if (projections.length === 1) {
      const p = projections[0] as ProjectionSpec;
      const w = await this.tensor(`${p.module}.weight`, [p.out, inF]);
      const side = await this.applyDelta(p, w, inF, 0);
      return {
        w,
        side: side?.kind === "lowrank" ? stackSideBranches([side], inF, sumOut) : null,
        routed: side?.kind === "routed" ? stackRouted([side], inF, sumOut) : null,
      };
    }
    const all = this.encoder?.allocF32(sumOut * inF) ?? new Float32Array(sumOut * inF);
    const sides: Array<{
      col: number;
      out: number;
      A: Float32Array;
      B: Float32Array;
      rank: number;
    }> = [];
    const routed: RoutedPart[] = [];
    let col = 0;
    for (const p of projections) {
      const w = await this.tensor(`${p.module}.weight`, [p.out, inF]);
      const side = await this.applyDelta(p, w, inF, col);
      if (side?.kind === "lowrank") sides.push(side);
      if (side?.kind === "routed") routed.push(side);
      all.set(w, col * inF);
      col += p.out;
    }
    return {
      w: all,
      side: sides.length ? stackSideBranches(sides, inF, sumOut) : null,
      routed: routed.length ? stackRouted(routed, inF, sumOut) : null,
    };
  }

  /** Folds the module's delta into w, or returns it as a side branch starting at output `col`. */
  private async applyDelta(p: ProjectionSpec, w: Float32Array, inF: number, col: number) {
    const delta: WeightDelta | undefined = this.deltas
      ? await this.deltas.get(p.module)
      : undefined;
    if (!delta) return null;
    checkDelta(p.module, delta, p.out, inF);
    // A routed delta has no single ΔW: it is always a side branch.
    if (delta.kind === "routed") {
      return {
        kind: "routed" as const,
        col,
        out: p.out,
        experts: delta.experts,
        router: delta.router,
      };
    }
    // A dense delta has no cheap side branch, so it is folded in either mode.
    if (this.deltaMode === "fold" || delta.kind === "dense") {
      foldDelta(w, delta, p.out, inF);
      return null;
    }
    return { kind: "lowrank" as const, col, out: p.out, A: delta.A, B: delta.B, rank: delta.rank };
  }
}

/** dst[i, colOffset + o] = src[o, i] for src: rows × cols; dst has dstCols columns. Blocked for cache reuse. */
export function transposeInto(
  dst: Float32Array,
  dstCols: number,
  colOffset: number,
  src: Float32Array,
  rows: number,
  cols: number,
): void {
  const BS = 64;
  for (let r0 = 0; r0 < rows; r0 += BS) {
    const r1 = Math.min(rows, r0 + BS);
    for (let c0 = 0; c0 < cols; c0 += BS) {
      const c1 = Math.min(cols, c0 + BS);
      for (let r = r0; r < r1; r++) {
        const srow = r * cols;
        for (let c = c0; c < c1; c++) dst[c * dstCols + colOffset + r] = src[srow + c] as number;
      }
    }
  }
}

function stackSideBranches(
  sides: Array<{ col: number; out: number; A: Float32Array; B: Float32Array; rank: number }>,
  inF: number,
  sumOut: number,
): SideBranch {
  const rank = sides.reduce((a, s) => a + s.rank, 0);
  const aT = new Float32Array(inF * rank);
  const bT = new Float32Array(rank * sumOut);
  let r0 = 0;
  for (const s of sides) {
    placeFactors(aT, bT, rank, sumOut, r0, s.col, s, inF);
    r0 += s.rank;
  }
  return { rank, aT, bT };
}

/**
 * Writes one factor pair into stacked transposed factors: A (r × in) into columns r0.. of aT
 * (in × rank), B (out × r) into rows r0.. of bT (rank × sumOut) at output columns col..
 */
function placeFactors(
  aT: Float32Array,
  bT: Float32Array,
  rank: number,
  sumOut: number,
  r0: number,
  col: number,
  f: { A: Float32Array; B: Float32Array; rank: number; out: number },
  inF: number,
): void {
  transposeInto(aT, rank, r0, f.A, f.rank, inF);
  for (let o = 0; o < f.out; o++) {
    for (let k = 0; k < f.rank; k++)
      bT[(r0 + k) * sumOut + col + o] = f.B[o * f.rank + k] as number;
  }
}

/**
 * Stacks the routed modules of one fused input: columns grouped module-major, expert-minor.
 * All modules must use the same router and number of expert slots (one strategy made them).
 */
function stackRouted(parts: RoutedPart[], inF: number, sumOut: number): RoutedBranch {
  const first = parts[0] as RoutedPart;
  const E = first.experts.length;
  for (const p of parts) {
    if (p.experts.length !== E || JSON.stringify(p.router) !== JSON.stringify(first.router)) {
      throw new MistralOnnxError(
        "routed deltas of one fused projection disagree on their router or number of experts",
      );
    }
  }
  const M = parts.length;
  const groupStart = new Int32Array(M * E);
  const groupRank = new Int32Array(M * E);
  let rank = 0;
  parts.forEach((p, m) => {
    p.experts.forEach((e, i) => {
      groupStart[m * E + i] = rank;
      groupRank[m * E + i] = e?.rank ?? 0;
      rank += e?.rank ?? 0;
    });
  });
  const aT = new Float32Array(inF * rank);
  const bT = new Float32Array(rank * sumOut);
  parts.forEach((p, m) => {
    p.experts.forEach((e, i) => {
      if (!e) return;
      placeFactors(
        aT,
        bT,
        rank,
        sumOut,
        groupStart[m * E + i] as number,
        p.col,
        { ...e, out: p.out },
        inF,
      );
    });
  });
  return { router: first.router, modules: M, experts: E, rank, aT, bT, groupStart, groupRank };
}

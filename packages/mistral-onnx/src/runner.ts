import type * as ort from "onnxruntime-node";
import { type MistralConfig, readMistralConfig } from "./config.js";
import { MistralOnnxError } from "./errors.js";
import { IO } from "./io.js";
import { type ForwardResult, type ForwardStep, leftPad, runForward } from "./forward.js";
import {
  type GenerateContext,
  type GenerateIdsOptions,
  type GenerateOptions,
  generateIds,
  generateTexts,
} from "./generate.js";
import { existsSync } from "node:fs";
import { generationGraphPath } from "./generation-graph.js";
import type { KvShape } from "./kv-cache.js";
import { sessionGreedyLoop } from "./loop-generate.js";
import {
  CHOICE_SCORINGS,
  CHOICE_TOKENIZATIONS,
  type ChoiceScoring,
  DEFAULT_CHOICE_SCORING,
  DEFAULT_CHOICE_TOKENIZATION,
  DEFAULT_GENERATION_GRAPH,
  type ExecutionProvider,
  formatChoices,
  GENERATION_GRAPHS,
  type GenerationGraph,
  isOneOf,
} from "./options.js";
import { type ContinuationScore, type ScoreContext, scoreContinuations } from "./score.js";
import type { ChoiceTokenization } from "./scoring.js";
import { createSession, kvShapeOf, LazySession } from "./session.js";
import { Tokenizer } from "./tokenizer.js";

export type { ContinuationScore, ExecutionProvider, ForwardResult, ForwardStep, GenerateOptions };
export { leftPad };

export interface MistralRunnerOptions {
  onnxPath: string;
  /** config.json and tokenizer files. */
  modelDir: string;
  executionProvider?: ExecutionProvider;
  /** Intra-op threads (default: onnxruntime's choice, all physical cores). */
  threads?: number;
  /**
   * Let idle intra-op threads spin (onnxruntime's default, true): lower latency on a dedicated
   * machine; false avoids burning cores that other processes need on a shared one.
   */
  allowSpinning?: boolean;
  /**
   * Called with a message when a GPU provider was asked for but cannot start, naming the cause
   * (default: console.warn).
   */
  onWarning?: (message: string) => void;
  /** How `scoreContinuations` tokenizes a choice (default "separate"; see `ChoiceTokenization`). */
  choiceTokenization?: ChoiceTokenization;
  /**
   * How `scoreContinuations` runs a row's choices (default "shared-cache": the prompt once, then
   * one batch-1 forward per choice on its cache; "batched": one left-padded forward of all full
   * sequences per row). Same scores; see `ChoiceScoring`.
   */
  choiceScoring?: ChoiceScoring;
  /**
   * Where generate()/generateIds() run the greedy decode loop (default "none": on the host).
   * "loop" uses generate.onnx next to onnxPath (buildOnnxModel writes it; buildGenerationGraph
   * makes it for an older build): one session.run per batch, the KV cache never leaving
   * onnxruntime. Its session opens on the first generation call; both sessions hold the
   * weights, so by default only one is open at a time (see keepBothSessions).
   */
  generationGraph?: GenerationGraph;
  /**
   * With generationGraph "loop": keep the scoring and the generation session open together
   * (default false). Each holds the weights (14.5 GB at 7B fp16), so by default opening one
   * releases the other, and switching back reloads it: one reload per switch, which the CSV
   * evaluation (every multiple-choice row, then every generation row) makes once. Measured on an
   * H200 with both open: 56.2 GB peak for the 7B run (docs/benchmarks.md), past a 48 GB card.
   */
  keepBothSessions?: boolean;
}

/** The present KV outputs, which stay on the GPU under WebGPU (see SessionOptions.deviceOutputs). */
function presentOutputs(layers: number): string[] {
  return Array.from({ length: layers }, (_, l) => [IO.presentKey(l), IO.presentValue(l)]).flat();
}

/**
 * Runs a decoder built by buildOnnxModel on onnxruntime-node: logits, continuation scoring with a
 * shared prompt KV cache, and batched greedy generation. Deterministic: greedy decoding, fixed
 * batching order. The work lives in session.ts (providers), forward.ts (one pass), generate.ts
 * (greedy loop, stop strings) and score.ts (continuation scoring); this class ties them together.
 */
export class MistralRunner {
  private constructor(
    session: ort.InferenceSession,
    readonly tokenizer: Tokenizer,
    readonly config: MistralConfig,
    private readonly kv: KvShape,
    /** The provider actually in use (after any fallback). */
    readonly executionProvider: ExecutionProvider,
    readonly choiceTokenization: ChoiceTokenization,
    readonly choiceScoring: ChoiceScoring,
    readonly generationGraph: GenerationGraph,
    private readonly sessionOptions: MistralRunnerOptions,
  ) {
    this.scoringSession = new LazySession(
      () =>
        createSession({
          ...sessionOptions,
          deviceOutputs: presentOutputs(config.numLayers),
        }).then((o) => o.session),
      session,
    );
    this.genSession = new LazySession(() =>
      createSession({
        ...sessionOptions,
        onnxPath: generationGraphPath(sessionOptions.onnxPath),
      }).then((o) => o.session),
    );
  }

  /** The model.onnx session; released while the generation session is open. */
  private readonly scoringSession: LazySession;
  /** The generate.onnx session, opened on first use when generationGraph is "loop". */
  private readonly genSession: LazySession;

  static async create(options: MistralRunnerOptions): Promise<MistralRunner> {
    const config = await readMistralConfig(options.modelDir);
    const tokenizer = await Tokenizer.fromDir(options.modelDir);
    const tokenization = options.choiceTokenization ?? DEFAULT_CHOICE_TOKENIZATION;
    if (!isOneOf(CHOICE_TOKENIZATIONS, tokenization)) {
      throw new MistralOnnxError(
        `choiceTokenization must be ${formatChoices(CHOICE_TOKENIZATIONS)}, got ${JSON.stringify(tokenization)}`,
        { field: "choiceTokenization" },
      );
    }
    const choiceScoring = options.choiceScoring ?? DEFAULT_CHOICE_SCORING;
    if (!isOneOf(CHOICE_SCORINGS, choiceScoring)) {
      throw new MistralOnnxError(
        `choiceScoring must be ${formatChoices(CHOICE_SCORINGS)}, got ${JSON.stringify(choiceScoring)}`,
        { field: "choiceScoring" },
      );
    }
    const generationGraph = options.generationGraph ?? DEFAULT_GENERATION_GRAPH;
    if (!isOneOf(GENERATION_GRAPHS, generationGraph)) {
      throw new MistralOnnxError(
        `generationGraph must be ${formatChoices(GENERATION_GRAPHS)}, got ${JSON.stringify(generationGraph)}`,
        { field: "generationGraph" },
      );
    }
    const generatePath = generationGraphPath(options.onnxPath);
    if (generationGraph === "loop" && !existsSync(generatePath)) {
      throw new MistralOnnxError(
        `${generatePath}: generationGraph "loop" needs the generation graph next to ${options.onnxPath}; rebuild the model or run buildGenerationGraph(onnxPath)`,
        { file: generatePath, field: "generationGraph" },
      );
    }
    const { session, provider } = await createSession({
      ...options,
      deviceOutputs: presentOutputs(config.numLayers),
    });
    const kv = kvShapeOf(session, config);
    return new MistralRunner(
      session,
      tokenizer,
      config,
      kv,
      provider,
      tokenization,
      choiceScoring,
      generationGraph,
      // The generation session uses the provider the scoring session got (no second fallback warning).
      { ...options, executionProvider: provider },
    );
  }

  /** One forward pass. Exposed for callers that manage their own cache. */
  async forward(step: ForwardStep): Promise<ForwardResult> {
    return runForward(await this.scoring(), this.kv, step);
  }

  /** The scoring session, reopened (after releasing the generation session) when released. */
  private async scoring(): Promise<ort.InferenceSession> {
    if (!this.scoringSession.isOpen && !this.sessionOptions.keepBothSessions) {
      await this.genSession.release();
    }
    return this.scoringSession.get();
  }

  /**
   * Logits for token rows of any lengths, run as one left-padded batch with no cache.
   * Returns batch × maxLen × vocab (padding positions hold unspecified values), or
   * batch × vocab for the last token of each row with `lastOnly`.
   */
  async logits(inputIds: number[][], options: { lastOnly?: boolean } = {}): Promise<Float32Array> {
    if (inputIds.length === 0) return new Float32Array(0);
    this.checkIds(inputIds);
    const { ids, mask, positions } = leftPad(inputIds, this.tokenizer.padId);
    const r = await this.forward({
      inputIds: ids,
      attentionMask: mask,
      positionIds: positions,
      logitsToKeep: options.lastOnly ? 1 : 0,
    });
    return r.logits;
  }

  /**
   * Per choice: the summed log-probability of all its tokens given the prompt (the first token
   * included) and the per-token mean. Tokens follow the runner's `choiceTokenization`, the
   * forwards its `choiceScoring` ("shared-cache": the prompt once, its KV cache shared by all
   * choices; "batched": one forward of all prompt + choice sequences). A choice that tokenizes
   * to no tokens scores −Infinity. `options` override either for one call.
   */
  async scoreContinuations(
    prompt: string,
    choices: string[],
    options: { tokenization?: ChoiceTokenization; scoring?: ChoiceScoring } = {},
  ): Promise<ContinuationScore[]> {
    const scoring = options.scoring ?? this.choiceScoring;
    if (!isOneOf(CHOICE_SCORINGS, scoring)) {
      throw new MistralOnnxError(
        `scoring must be ${formatChoices(CHOICE_SCORINGS)}, got ${JSON.stringify(scoring)}`,
        { field: "scoring" },
      );
    }
    return scoreContinuations(
      this.scoreContext(),
      prompt,
      choices,
      options.tokenization ?? this.choiceTokenization,
      scoring,
    );
  }

  /**
   * Greedy generation for token rows (BOS included as the tokenizer adds it), batched with left
   * padding. Returns the new tokens per row, without the EOS that ended it.
   */
  async generateIds(prompts: number[][], options: GenerateIdsOptions = {}): Promise<number[][]> {
    this.checkIds(prompts);
    return generateIds(this.generateContext(), prompts, options);
  }

  /**
   * Greedy continuations of text prompts (special tokens skipped). Rows stop at EOS, after
   * maxNewTokens (default 64), or at the first stop string, which is cut off with what follows.
   * Prompts are sorted by length into batches so padding stays small; results keep input order.
   */
  generate(prompts: string[], options: GenerateOptions = {}): Promise<string[]> {
    return generateTexts(
      { ...this.generateContext(), checkIds: (rows) => this.checkIds(rows) },
      prompts,
      options,
    );
  }

  async close(): Promise<void> {
    await this.genSession.release();
    await this.scoringSession.release();
  }

  /** Releases the generate.onnx session (reopened by the next generation call). */
  releaseGenerationSession(): Promise<void> {
    return this.genSession.release();
  }

  /** The generation session; opening it releases the scoring session unless keepBothSessions. */
  private async generationSession(): Promise<ort.InferenceSession> {
    if (!this.genSession.isOpen && !this.sessionOptions.keepBothSessions) {
      await this.scoringSession.release();
    }
    return this.genSession.get();
  }

  private generateContext(): GenerateContext {
    return {
      forward: (step) => this.forward(step),
      tokenizer: this.tokenizer,
      vocabSize: this.config.vocabSize,
      eosTokenIds: this.config.eosTokenIds,
      ...(this.generationGraph === "loop"
        ? {
            greedyLoop: async (batch, maxNew, eos, pad) =>
              sessionGreedyLoop(await this.generationSession())(batch, maxNew, eos, pad),
          }
        : {}),
    };
  }

  private scoreContext(): ScoreContext {
    return {
      forward: (step) => this.forward(step),
      tokenizer: this.tokenizer,
      vocabSize: this.config.vocabSize,
      checkIds: (rows) => this.checkIds(rows),
    };
  }

  private checkIds(rows: number[][]): void {
    const V = this.config.vocabSize;
    rows.forEach((r, i) => {
      for (const t of r) {
        if (!Number.isInteger(t) || t < 0 || t >= V) {
          throw new MistralOnnxError(
            `token id ${t} in row ${i} is outside the vocabulary [0, ${V})`,
          );
        }
      }
    });
  }
}

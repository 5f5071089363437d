import { IO } from "../io.js";
import {
  type AttrValue,
  attribute,
  DataType,
  type ModelProto,
  type NodeProto,
  onnx,
  rawBytes,
  type TensorProto,
  type ValueInfoProto,
} from "./proto.js";

/** Input/output names of the generation graph (generate.onnx); the runner binds these. */
export const GEN_IO = {
  inputIds: "prompt_input_ids",
  attentionMask: "prompt_attention_mask",
  positionIds: "prompt_position_ids",
  /** int64 scalar: the Loop's trip count, one decoder step (prefill included) per new token. */
  maxNewTokens: "max_new_tokens",
  /** int64 [E], E ≥ 1: a row is done once it has produced one of these. */
  eosTokenIds: "eos_token_ids",
  /** int64 scalar: fed in place of the next token for rows already done (as the host loop does). */
  padTokenId: "pad_token_id",
  /** int64 [steps, batch]: the greedy token of each row at each step (rows are cut host-side). */
  tokens: "generated_tokens",
} as const;

const INT64_BIG = 2 ** 62;
const P = "/greedy";

/**
 * Builds generate.onnx from a decoder ModelProto (model.onnx, as buildDecoderGraph writes it):
 * the greedy decode loop runs inside the graph, so the KV cache never leaves the device.
 *
 * The decoder's nodes become the body of one ONNX Loop, unchanged: the body's inputs carry the
 * decoder's own input names (input_ids, attention_mask, position_ids, past_key_values.*), so
 * every node, LoRA side branch and routed branch reads them as in model.onnx. The decoder's
 * initializers become the body's initializers with the same TensorProtos (external-data
 * location, offset and length): generate.onnx shares model.onnx.data and no weight is read or
 * written to make it. They sit in the body rather than the outer graph (referenced by outer-scope
 * name) because the body is their only consumer (the prefill is iteration 0), so onnxruntime
 * places them once for the body's kernels instead of threading ~10 tensors per layer through the
 * Loop node as implicit inputs.
 *
 * Iteration 0 is the prefill (the prompt over an empty cache, like generateIds' first forward);
 * every later iteration feeds the previous token. Loop-carried: next input ids, attention mask
 * (grows by one column), positions (last + 1), `done` (rows that produced an EOS before the fed
 * token) and the KV cache (grows by one position). Each iteration emits ArgMax over the last
 * position's float32 logits (first index on ties, as argmaxRow) as a scan output, and the
 * Loop's condition goes false once every row has produced an EOS; the trip count caps it at
 * max_new_tokens. Rows already done are fed the pad id, exactly as generateIds does, so the
 * steps compute what the host loop computes.
 */
export function greedyLoopModel(decoder: ModelProto): ModelProto {
  const graph = decoder.graph;
  if (!graph?.node || !graph.input || !graph.output) {
    throw new Error("greedyLoopModel: the decoder model has no graph");
  }
  const inputNames = graph.input.map((i) => i.name as string);
  const layers = inputNames.filter((n) => /^past_key_values\.\d+\.key$/u.test(n)).length;
  for (const need of [IO.inputIds, IO.attentionMask, IO.positionIds, IO.logitsToKeep]) {
    if (!inputNames.includes(need)) {
      throw new Error(`greedyLoopModel: the decoder has no input ${JSON.stringify(need)}`);
    }
  }
  if (layers === 0) throw new Error("greedyLoopModel: the decoder has no past_key_values inputs");
  const pastInfo = graph.input.find((i) => i.name === IO.pastKey(0)) as ValueInfoProto;
  const kvElem = pastInfo.type?.tensorType?.elemType as number;
  const pastDims = pastInfo.type?.tensorType?.shape?.dim ?? [];
  const kvHeads = Number(pastDims[1]?.dimValue);
  const headDim = Number(pastDims[3]?.dimValue);
  if (!(kvHeads > 0 && headDim > 0)) {
    throw new Error("greedyLoopModel: past_key_values.0.key must have fixed kv-head and head dims");
  }

  const outer = new NodeList(`${P}/outer`);
  const body = new NodeList(`${P}/step`);
  // Small constants of the outer graph and of the body, each in the graph that uses it, so
  // onnxruntime sees the body's as the body's own constant initializers.
  const outerConsts: TensorProto[] = [];
  const bodyConsts: TensorProto[] = [];
  const constantIn =
    (list: TensorProto[], scope: string) =>
    (name: string, elem: "int64" | "float32", values: number[], dims: number[]) => {
      const full = `${scope}/const/${name}`;
      list.push({
        name: full,
        dataType: elem === "int64" ? DataType.INT64 : DataType.FLOAT,
        dims,
        rawData: rawBytes(values, elem),
      });
      return full;
    };
  const oc = constantIn(outerConsts, `${P}/outer`);
  const bc = constantIn(bodyConsts, `${P}/step`);
  const o0 = oc("zero_1d", "int64", [0], [1]);
  const o1 = oc("one_1d", "int64", [1], [1]);
  const cKvTail = oc("kv_tail", "int64", [kvHeads, 0, headDim], [3]);
  const c0 = bc("zero_1d", "int64", [0], [1]);
  const c1 = bc("one_1d", "int64", [1], [1]);
  const cNeg1 = bc("minus_one_1d", "int64", [-1], [1]);
  const cBig = bc("big_1d", "int64", [INT64_BIG], [1]);
  const cOneScalar = bc("one", "int64", [1], []);
  const cHalf = bc("half", "float32", [0.5], []);

  // ---- outer graph: the initial loop state
  const batch1 = outer.op("Slice", [outer.op("Shape", [GEN_IO.inputIds]), o0, o1]); // [1]
  const emptyKv = outer.op(
    "ConstantOfShape",
    [outer.op("Concat", [batch1, cKvTail], { axis: 0 })],
    {
      value: {
        tensor: {
          dataType: kvElem,
          dims: [1],
          rawData: new Uint8Array(kvElem === DataType.FLOAT ? 4 : 2),
        },
      },
    },
  );
  const notDone = outer.op("ConstantOfShape", [batch1], {
    value: { tensor: { dataType: DataType.BOOL, dims: [1], rawData: new Uint8Array(1) } },
  });
  const condTrue = outer.op("Greater", [oc("one", "int64", [1], []), oc("zero", "int64", [0], [])]);

  // ---- loop body: one decoder step, then argmax and the next state
  const bodyIn: ValueInfoProto[] = [
    tensorInfo(`${P}/iter`, DataType.INT64, []),
    tensorInfo(`${P}/cond_in`, DataType.BOOL, []),
    tensorInfo(IO.inputIds, DataType.INT64, ["batch", "seq"]),
    tensorInfo(IO.attentionMask, DataType.INT64, ["batch", "total_seq"]),
    tensorInfo(IO.positionIds, DataType.INT64, ["batch", "seq"]),
    tensorInfo(`${P}/done_in`, DataType.BOOL, ["batch"]),
  ];
  for (let l = 0; l < layers; l++) {
    const dims = ["batch", kvHeads, "past_seq", headDim];
    bodyIn.push(tensorInfo(IO.pastKey(l), kvElem, dims), tensorInfo(IO.pastValue(l), kvElem, dims));
  }
  body.nodes.push({
    opType: "Constant",
    name: `${P}/step/logits_to_keep`,
    input: [],
    output: [IO.logitsToKeep],
    attribute: [
      attribute("value", {
        tensor: { dataType: DataType.INT64, dims: [], rawData: rawBytes([1], "int64") },
      }),
    ],
  });
  body.nodes.push(...graph.node);
  const lastLogits = body.op("Reshape", [
    body.op("Slice", [IO.logits, cNeg1, cBig, c1]),
    bc("b_v", "int64", [0, -1], [2]),
  ]); // [B,V] float32
  const tok = body.op("ArgMax", [lastLogits], { axis: -1, keepdims: 0, select_last_index: 0 }); // [B]
  const isEos = body.op("Greater", [
    body.op(
      "ReduceMax",
      [
        body.op(
          "Cast",
          [
            body.op("Equal", [
              body.op("Unsqueeze", [tok, c1]),
              body.op("Unsqueeze", [GEN_IO.eosTokenIds, c0]),
            ]),
          ],
          { to: 1 },
        ),
      ],
      { axes: [1], keepdims: 0 },
    ),
    cHalf,
  ]); // [B] bool
  const doneOut = body.op("Or", [`${P}/done_in`, isEos]);
  // Fed next: pad for rows done before this token (generateIds' `done[b] ? pad : tok`).
  const nextIds = body.op("Unsqueeze", [
    body.op("Where", [`${P}/done_in`, GEN_IO.padTokenId, tok]),
    c1,
  ]);
  const ones = body.op(
    "ConstantOfShape",
    [body.op("Concat", [body.op("Slice", [body.op("Shape", [tok]), c0, c1]), c1], { axis: 0 })],
    {
      value: { tensor: { dataType: DataType.INT64, dims: [1], rawData: rawBytes([1], "int64") } },
    },
  );
  const nextMask = body.op("Concat", [IO.attentionMask, ones], { axis: 1 });
  const nextPos = body.op("Add", [body.op("Slice", [IO.positionIds, cNeg1, cBig, c1]), cOneScalar]);
  const allDone = body.op("Greater", [
    body.op("ReduceMin", [body.op("Cast", [doneOut], { to: 1 })], { axes: [0], keepdims: 0 }),
    cHalf,
  ]);
  const condOut = body.op("Not", [allDone]);
  const tokOut = body.op("Identity", [tok]);
  const bodyOutNames = [condOut, nextIds, nextMask, nextPos, doneOut];
  for (let l = 0; l < layers; l++) bodyOutNames.push(IO.presentKey(l), IO.presentValue(l));
  bodyOutNames.push(tokOut);
  // Types in body-output order: cond (bool scalar), ids, mask, positions (int64), done (bool),
  // 2·layers K/V (model dtype), the token (int64 scan output).
  const bodyOut = bodyOutNames.map((n, i) =>
    tensorInfo(
      n,
      i === 0 || i === 4 ? DataType.BOOL : i >= 5 && i < 5 + 2 * layers ? kvElem : DataType.INT64,
    ),
  );
  bodyOut[0] = tensorInfo(condOut, DataType.BOOL, []);

  const loopIn = [
    GEN_IO.maxNewTokens,
    condTrue,
    GEN_IO.inputIds,
    GEN_IO.attentionMask,
    GEN_IO.positionIds,
    notDone,
  ];
  for (let l = 0; l < layers; l++) loopIn.push(emptyKv, emptyKv);
  const finals = Array.from({ length: 4 + 2 * layers }, (_, i) => `${P}/final_${i}`);
  const stepsByBatch = `${P}/tokens_by_step`;
  outer.nodes.push({
    opType: "Loop",
    name: `${P}/Loop`,
    input: loopIn,
    output: [...finals, stepsByBatch],
    attribute: [
      {
        name: "body",
        type: onnx.AttributeProto.AttributeType.GRAPH,
        g: {
          name: "greedy_step",
          node: body.nodes,
          // The decoder's initializers as they are (external weights keep their location,
          // offset and length), as the body's own: onnxruntime's graph optimizer fuses and
          // constant-folds only over a graph's own initializers, not outer-scope values.
          initializer: [...(graph.initializer ?? []), ...bodyConsts],
          input: bodyIn,
          output: bodyOut,
        },
      },
    ],
  });
  outer.nodes.push({
    opType: "Identity",
    name: `${P}/tokens`,
    input: [stepsByBatch],
    output: [GEN_IO.tokens],
    attribute: [],
  });

  return {
    irVersion: decoder.irVersion ?? 8,
    producerName: decoder.producerName ?? "@merge/mistral-onnx",
    opsetImport: decoder.opsetImport ?? [],
    graph: {
      name: "greedy_generate",
      node: outer.nodes,
      // The decoder's initializers as they are: external weights keep their location/offset.
      initializer: outerConsts,
      input: [
        tensorInfo(GEN_IO.inputIds, DataType.INT64, ["batch", "seq"]),
        tensorInfo(GEN_IO.attentionMask, DataType.INT64, ["batch", "seq"]),
        tensorInfo(GEN_IO.positionIds, DataType.INT64, ["batch", "seq"]),
        tensorInfo(GEN_IO.maxNewTokens, DataType.INT64, []),
        tensorInfo(GEN_IO.eosTokenIds, DataType.INT64, ["eos"]),
        tensorInfo(GEN_IO.padTokenId, DataType.INT64, []),
      ],
      output: [tensorInfo(GEN_IO.tokens, DataType.INT64, ["steps", "batch"])],
    },
  };
}

/** Encoded generate.onnx for encoded model.onnx bytes. */
export function greedyLoopModelBytes(decoderBytes: Uint8Array): Uint8Array {
  const decoder = onnx.ModelProto.decode(decoderBytes);
  return onnx.ModelProto.encode(onnx.ModelProto.create(greedyLoopModel(decoder))).finish();
}

/** A tensor value info; `dims` undefined leaves the shape unset (loop-carried values grow). */
function tensorInfo(name: string, elemType: number, dims?: Array<number | string>): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        ...(dims
          ? {
              shape: {
                dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
              },
            }
          : {}),
      },
    },
  };
}

/** Nodes with generated, scope-prefixed names that cannot collide with the decoder's. */
class NodeList {
  readonly nodes: NodeProto[] = [];
  private n = 0;
  constructor(private readonly scope: string) {}

  op(
    type: string,
    inputs: string[],
    attrs: Record<string, number | number[] | AttrValue> = {},
  ): string {
    const name = `${this.scope}/${type}_${this.n++}`;
    const out = `${name}:0`;
    this.nodes.push({
      opType: type,
      name,
      input: inputs,
      output: [out],
      attribute: Object.entries(attrs).map(([k, v]) =>
        attribute(k, typeof v === "number" ? { int: v } : Array.isArray(v) ? { ints: v } : v),
      ),
    });
    return out;
  }
}

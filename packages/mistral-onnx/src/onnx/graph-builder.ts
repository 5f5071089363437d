import { inlineEncoder, type WeightEncoder } from "../encode/encoder.js";
import type { ExternalDataWriter } from "./external-data.js";
import {
  type AttrValue,
  attribute,
  type Dim,
  type ElemType,
  inlineTensor,
  type NodeProto,
  onnx,
  rawBytes,
  type TensorProto,
  type ValueInfoProto,
  valueInfo,
} from "./proto.js";

export interface OpOptions {
  attrs?: Record<string, AttrValue>;
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Explicit output names (for graph outputs). */
  outputNames?: string[];
  domain?: string;
}

/**
 * Accumulates an ONNX graph: nodes, graph inputs/outputs, small inline constants and large
 * weights, which go straight to the external data file as they are added.
 */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  private counter = 0;
  private readonly constCache = new Map<string, string>();
  private scope = "";

  constructor(
    private readonly data: ExternalDataWriter,
    /** Transposes and quantizes projection weights (on worker threads when built with several). */
    readonly encoder: WeightEncoder = inlineEncoder,
  ) {}

  /** Prefix for generated names, so the graph reads like the module tree. */
  withScope<T>(scope: string, fn: () => T): T {
    const prev = this.scope;
    this.scope = scope;
    try {
      return fn();
    } finally {
      this.scope = prev;
    }
  }

  setScope(scope: string): void {
    this.scope = scope;
  }

  input(name: string, elem: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, elem, dims));
    return name;
  }

  output(name: string, elem: ElemType, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, elem, dims));
  }

  op(type: string, inputs: string[], options: OpOptions = {}): string[] {
    const id = this.counter++;
    const base = `${this.scope}/${type}_${id}`;
    const n = options.outputNames?.length ?? options.outputs ?? 1;
    const outputs = options.outputNames ?? Array.from({ length: n }, (_, i) => `${base}:${i}`);
    const node: NodeProto = {
      opType: type,
      name: base,
      input: inputs,
      output: outputs,
      attribute: Object.entries(options.attrs ?? {}).map(([k, v]) => attribute(k, v)),
    };
    if (options.domain) node.domain = options.domain;
    this.nodes.push(node);
    return outputs;
  }

  /** Single-output op. */
  op1(type: string, inputs: string[], options: OpOptions = {}): string {
    return this.op(type, inputs, options)[0] as string;
  }

  /** A small constant, shared between uses. `dims` defaults to 1-D. */
  constant(elem: ElemType, values: number[], dims?: number[]): string {
    const shape = dims ?? [values.length];
    const key = `${elem}|${shape.join(",")}|${values.join(",")}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = `const_${this.constCache.size}`;
    this.initializers.push(inlineTensor(name, elem, shape, rawBytes(values, elem)));
    this.constCache.set(key, name);
    return name;
  }

  /** A weight: its bytes go to the external data file now. */
  async weight(name: string, elem: ElemType, dims: number[], bytes: Uint8Array): Promise<string> {
    this.initializers.push(await this.data.write(name, elem, dims, bytes));
    return name;
  }

  toModel(opset: number): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "@merge/mistral-onnx",
      opsetImport: [
        { domain: "", version: opset },
        { domain: "com.microsoft", version: 1 },
      ],
      graph: {
        name: "decoder",
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

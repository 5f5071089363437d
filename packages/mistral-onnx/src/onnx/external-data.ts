import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { ELEM_SIZE, type ElemType, onnx, type TensorProto } from "./proto.js";

/** Offsets are aligned so onnxruntime can memory-map the weights (page size on Linux/macOS). */
const ALIGN = 4096;

/**
 * Appends tensors to an ONNX external-data file as they are produced, so only one tensor is in
 * memory at a time and the 2 GB protobuf limit never applies. Written to a temporary name and
 * renamed by `commit`.
 */
export class ExternalDataWriter {
  private offset = 0;
  /** The write under way (resolved when none); `bytes` given to write must stay unchanged till then. */
  private pending: Promise<void> = Promise.resolve();
  private constructor(
    private readonly handle: FileHandle,
    private readonly tmpPath: string,
    readonly finalPath: string,
    /** The location string stored in the model (a path relative to model.onnx). */
    readonly location: string,
  ) {}

  static async create(finalPath: string, location: string): Promise<ExternalDataWriter> {
    const tmpPath = `${finalPath}.tmp-${process.pid}`;
    const handle = await open(tmpPath, "w");
    return new ExternalDataWriter(handle, tmpPath, finalPath, location);
  }

  /**
   * Queues one tensor's bytes (which the caller must not change afterwards) and returns its
   * TensorProto pointing into the data file. Resolves once the previous tensor is written.
   */
  async write(
    name: string,
    elem: ElemType,
    dims: number[],
    bytes: Uint8Array,
  ): Promise<TensorProto> {
    const expected = dims.reduce((a, b) => a * b, 1) * ELEM_SIZE[elem];
    if (bytes.byteLength !== expected) {
      // A bug in the builder, not bad input: shapes are validated before this point.
      throw new Error(`external data for ${name}: ${bytes.byteLength} bytes, expected ${expected}`);
    }
    const start = Math.ceil(this.offset / ALIGN) * ALIGN;
    this.offset = start + bytes.byteLength;
    // One write in flight: this tensor's bytes go to disk while the caller reads and encodes
    // the next one, and memory holds at most those two. A failed write rethrows here (or in
    // commit).
    await this.pending;
    this.pending = this.writeAt(bytes, start);
    this.pending.catch(() => undefined); // handled by the next await of this.pending
    return {
      name,
      dataType: onnx.TensorProto.DataType[elemName(elem)],
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: this.location },
        { key: "offset", value: String(start) },
        { key: "length", value: String(bytes.byteLength) },
      ],
    };
  }

  /** Writes all of `bytes` at `position` (a write may take less than asked). */
  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let written = 0;
    while (written < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(
        bytes,
        written,
        bytes.byteLength - written,
        position + written,
      );
      written += bytesWritten;
    }
  }

  async commit(): Promise<void> {
    await this.pending;
    await this.handle.sync();
    await this.handle.close();
    await rename(this.tmpPath, this.finalPath);
  }

  async abort(): Promise<void> {
    await this.pending.catch(() => undefined);
    await this.handle.close().catch(() => undefined);
    await rm(this.tmpPath, { force: true });
  }
}

function elemName(elem: ElemType): "FLOAT" | "FLOAT16" | "INT64" | "INT32" | "UINT8" | "BOOL" {
  switch (elem) {
    case "float32":
      return "FLOAT";
    case "float16":
      return "FLOAT16";
    case "int64":
      return "INT64";
    case "int32":
      return "INT32";
    case "uint8":
      return "UINT8";
    case "bool":
      return "BOOL";
  }
}

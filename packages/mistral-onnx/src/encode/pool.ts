import { Worker } from "node:worker_threads";
import { f32BitsToF16, quantizeRowsInto, transposeRowsInto, widenBf16Into } from "./kernels.js";

/** The kernels a pool worker runs, by name; their source text is the worker's code. */
const KERNELS = { quantizeRowsInto, transposeRowsInto, widenBf16Into } as const;
export type KernelName = keyof typeof KERNELS;

/** One call of a kernel: its arguments before the row range, with the row range last-but-args. */
interface Task {
  kernel: KernelName;
  /** Arguments; typed arrays in them must be views of SharedArrayBuffers. */
  args: unknown[];
  /** Index in args where the [start, end) row range goes. */
  rangeAt: number;
  start: number;
  end: number;
}

function workerSource(): string {
  // Each kernel is a self-contained function declaration (kernels.ts keeps them so); the
  // names are whatever the bundler gave them, and the dispatch table uses the same names.
  const decls = [f32BitsToF16, quantizeRowsInto, transposeRowsInto, widenBf16Into].map((f) =>
    f.toString(),
  );
  const table = Object.entries(KERNELS)
    .map(([k, f]) => `${JSON.stringify(k)}: ${f.name}`)
    .join(", ");
  return `"use strict";
const { parentPort } = require("node:worker_threads");
// A worker allocates almost nothing, so its garbage collector would never run and its handles
// on the tensors it was sent would keep every SharedArrayBuffer of the build alive. It
// collects once it has been idle for 20 ms instead: between tensors, while the main thread
// reads the next one (collecting after every task cost more than the tiny models' work).
let collect = globalThis.gc;
if (typeof collect !== "function") {
  require("node:v8").setFlagsFromString("--expose-gc");
  collect = require("node:vm").runInNewContext("gc");
}
let idleTimer;
${decls.join("\n")}
const KERNELS = { ${table} };
parentPort.on("message", (m) => {
  try {
    const args = m.args.slice();
    args.splice(m.rangeAt, 0, m.start, m.end);
    KERNELS[m.kernel](...args);
    parentPort.postMessage({ id: m.id });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.stack || e) });
  }
  clearTimeout(idleTimer);
  idleTimer = setTimeout(collect, 20);
});`;
}

/**
 * A fixed set of worker threads that split one kernel call over row ranges of a tensor in
 * shared memory. Rows are cut into contiguous chunks and every chunk writes only its own
 * output rows, so the result does not depend on how many threads ran or in which order.
 */
export class KernelPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Array<{ task: Task; id: number }> = [];
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private closed = false;

  constructor(readonly threads: number) {
    const source = workerSource();
    for (let i = 0; i < threads; i++) {
      const w = new Worker(source, { eval: true });
      w.unref();
      w.on("message", (m: { id: number; error?: string }) => this.finished(w, m));
      w.on("error", (e) => this.failAll(e));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  /**
   * Runs `kernel(...args[0..rangeAt], start, end, ...args[rangeAt..])` over rows [0, rows) in
   * about 4 chunks per thread (so a slow thread does not hold the others up).
   */
  async run(kernel: KernelName, args: unknown[], rangeAt: number, rows: number): Promise<void> {
    if (this.closed) throw new Error("KernelPool is closed");
    const chunks = Math.min(rows, this.threads * 4);
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < chunks; i++) {
      const start = Math.floor((rows * i) / chunks);
      const end = Math.floor((rows * (i + 1)) / chunks);
      if (end > start) jobs.push(this.submit({ kernel, args, rangeAt, start, end }));
    }
    await Promise.all(jobs);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private submit(task: Task): Promise<void> {
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.queue.push({ task, id });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop() as Worker;
      const { task, id } = this.queue.shift() as { task: Task; id: number };
      // Typed arrays over SharedArrayBuffers are shared, not copied, by postMessage.
      w.postMessage({ id, ...task });
    }
  }

  private finished(w: Worker, m: { id: number; error?: string }): void {
    const p = this.waiting.get(m.id);
    this.waiting.delete(m.id);
    this.idle.push(w);
    this.pump();
    if (!p) return;
    if (m.error) p.reject(new Error(`build worker failed: ${m.error}`));
    else p.resolve();
  }

  private failAll(e: Error): void {
    for (const p of this.waiting.values()) p.reject(e);
    this.waiting.clear();
  }
}

// One measured phase of the read benchmark, in its own process so that its peak RSS belongs to
// that phase alone. Peak RSS is VmHWM from /proc/self/status: getrusage's maxRSS is not usable
// here because Linux carries the forked parent's high-water mark across exec. Prints one JSON line.
import { readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { SafetensorsFile } from "../src/index.js";

const [mode, path] = process.argv.slice(2);
if (mode === undefined || path === undefined)
  throw new Error("usage: read-worker.ts <mode> <file>");

/** Chunk size of the plain sequential read (a typical large buffered read). */
const PLAIN_CHUNK = 16 << 20;

async function plainRead(file: string): Promise<number> {
  const handle = await open(file, "r");
  const buffer = new Uint8Array(PLAIN_CHUNK);
  let total = 0;
  let checksum = 0;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, PLAIN_CHUNK, total);
      if (bytesRead === 0) break;
      checksum ^= buffer[bytesRead - 1]!; // touch the data so the read can't be elided
      total += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return total + (checksum & 0);
}

/** Plain positioned reads into a fresh buffer per tensor: the cost of fresh memory alone. */
async function plainFreshBuffers(file: string): Promise<number> {
  const st = await SafetensorsFile.open(file);
  const infos = [...st.tensors.values()].sort((a, b) => a.dataOffset - b.dataOffset);
  await st.close();
  const handle = await open(file, "r");
  let total = 0;
  try {
    for (const info of infos) {
      const buffer = new Uint8Array(info.byteLength);
      const { bytesRead } = await handle.read(buffer, 0, info.byteLength, info.dataOffset);
      total += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return total;
}

async function tensorRead(file: string, how: "bytes" | "into" | "f32"): Promise<number> {
  const st = await SafetensorsFile.open(file);
  let total = 0;
  try {
    // In file order, one tensor at a time; each buffer is dropped before the next read.
    const infos = [...st.tensors.values()].sort((a, b) => a.dataOffset - b.dataOffset);
    const reused =
      how === "into" ? new Uint8Array(Math.max(...infos.map((t) => t.byteLength))) : undefined;
    for (const { name } of infos) {
      if (how === "f32") total += (await st.readF32(name)).byteLength / 2;
      else if (reused !== undefined) total += (await st.readInto(name, reused)).byteLength;
      else total += (await st.readBytes(name)).byteLength;
    }
  } finally {
    await st.close();
  }
  return total;
}

const start = process.hrtime.bigint();
let bytes = 0;
if (mode === "plain") bytes = await plainRead(path);
else if (mode === "plain-fresh") bytes = await plainFreshBuffers(path);
else if (mode === "tensors") bytes = await tensorRead(path, "bytes");
else if (mode === "tensors-into") bytes = await tensorRead(path, "into");
else if (mode === "tensors-f32") bytes = await tensorRead(path, "f32");
else if (mode !== "idle") throw new Error(`unknown mode ${mode}`);
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
const hwmKb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]);
console.log(JSON.stringify({ mode, bytes, seconds, maxRssBytes: hwmKb * 1024 }));

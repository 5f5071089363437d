// One measured phase of the read benchmark, in its own process so that its peak RSS
// (process.resourceUsage().maxRSS) belongs to that phase alone. Prints one JSON line.
import { open } from "node:fs/promises";
import { SafetensorsFile } from "../src/index.js";

const [mode, path] = process.argv.slice(2);
if (mode === undefined || path === undefined) throw new Error("usage: read-worker.ts <mode> <file>");

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

async function tensorRead(file: string, decode: boolean): Promise<number> {
  const st = await SafetensorsFile.open(file);
  let total = 0;
  try {
    // In file order, one tensor at a time; each buffer is dropped before the next read.
    const names = [...st.tensors.values()].sort((a, b) => a.dataOffset - b.dataOffset).map((t) => t.name);
    for (const name of names) {
      if (decode) total += (await st.readF32(name)).byteLength / 2;
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
else if (mode === "tensors") bytes = await tensorRead(path, false);
else if (mode === "tensors-f32") bytes = await tensorRead(path, true);
else if (mode !== "idle") throw new Error(`unknown mode ${mode}`);
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({ mode, bytes, seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));

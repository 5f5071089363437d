// Runs a transformers.js (@huggingface/transformers v3) model in its own process: it ships its
// own onnxruntime-node (1.21), whose native library cannot share a process with the one
// MistralRunner loads (1.30; both are libonnxruntime.so.1). Reads a JSON request on stdin and
// writes a JSON answer on stdout; logits travel as base64 float32 bytes.
//
// Request: { dir, steps: [...] }, each step one of
//   { forward: number[], past?: index of an earlier forward step whose cache continues }
//   { generate: number[], maxNewTokens }
//   { tokenize: string }
// Answer: { inputNames, results: [...] }: { dims, logits } | { ids } per step.
import { basename, dirname } from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env, Tensor } from "@huggingface/transformers";

// Local files only: nothing is fetched.
env.allowRemoteModels = false;
env.allowLocalModels = true;

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
env.localModelPath = dirname(request.dir);
const name = basename(request.dir);

const ids = (row) => new Tensor("int64", BigInt64Array.from(row.map(BigInt)), [1, row.length]);
const ones = (n) => ids(new Array(n).fill(1));

const model = await AutoModelForCausalLM.from_pretrained(name, { local_files_only: true });
let tokenizer;
const caches = [];
const lengths = [];
const results = [];
for (const step of request.steps) {
  if (step.forward) {
    const past = step.past === undefined ? null : caches[step.past];
    const pastLength = step.past === undefined ? 0 : lengths[step.past];
    const out = await model({
      input_ids: ids(step.forward),
      attention_mask: ones(pastLength + step.forward.length),
      ...(past ? { past_key_values: past } : {}),
    });
    caches.push(model.getPastKeyValues(out, past));
    lengths.push(pastLength + step.forward.length);
    const data = out.logits.data;
    results.push({
      dims: out.logits.dims,
      logits: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64"),
    });
  } else if (step.generate) {
    const seq = await model.generate({
      input_ids: ids(step.generate),
      attention_mask: ones(step.generate.length),
      max_new_tokens: step.maxNewTokens,
      do_sample: false,
    });
    caches.push(null);
    lengths.push(0);
    results.push({ ids: Array.from(seq.data, Number) });
  } else if (step.tokenize !== undefined) {
    tokenizer ??= await AutoTokenizer.from_pretrained(name, { local_files_only: true });
    caches.push(null);
    lengths.push(0);
    results.push({ ids: Array.from(tokenizer(step.tokenize).input_ids.data, Number) });
  }
}
process.stdout.write(JSON.stringify({ inputNames: model.sessions.model.inputNames, results }));
await model.dispose();

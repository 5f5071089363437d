// Encodes strings with mistral-tokenizer-js's own encoder, for check_tokenizer.py.
// Usage: node compare_tokenizer.mjs <path to mistral-tokenizer.js> < strings.json > ids.json
// stdin: a JSON array of strings; stdout: a JSON array of id arrays (with <s>, as the package
// encodes by default: a BOS id and a prepended space, like Mistral's SentencePiece tokenizer).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const jsPath = process.argv[2];
if (!jsPath) {
  console.error("usage: node compare_tokenizer.mjs <mistral-tokenizer.js> < strings.json");
  process.exit(2);
}
const { default: tok } = await import(pathToFileURL(resolve(jsPath)).href);
const strings = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(strings.map((s) => tok.encode(s))));

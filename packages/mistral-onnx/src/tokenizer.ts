import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { MistralOnnxError } from "./errors.js";

type TokenSpec = string | { content: string } | null | undefined;

function tokenContent(t: TokenSpec): string | undefined {
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof t.content === "string") return t.content;
  return undefined;
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new MistralOnnxError(`${file}: cannot read tokenizer file (${(e as Error).message})`, {
      file,
    });
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new MistralOnnxError(`${file}: invalid JSON (${(e as Error).message})`, { file });
  }
}

/** Whether the tokenizer.json post-processor puts BOS first / EOS last (probed on one encode). */
function postProcessorSpecials(
  hf: HfTokenizer,
  bosId: number | undefined,
  eosId: number | undefined,
): { bos: boolean; eos: boolean } {
  const probe = "a";
  const plain = hf.encode(probe, { add_special_tokens: false }).ids;
  const special = hf.encode(probe, { add_special_tokens: true }).ids;
  return {
    bos: bosId !== undefined && special[0] === bosId && plain[0] !== bosId,
    eos: eosId !== undefined && special.at(-1) === eosId && plain.at(-1) !== eosId,
  };
}

/**
 * A Hugging Face fast tokenizer (tokenizer.json + tokenizer_config.json) run by
 * @huggingface/tokenizers. Special tokens follow the tokenizer.json post-processor, except that
 * an explicit `add_bos_token` / `add_eos_token` in tokenizer_config.json wins, as
 * transformers 4's LlamaTokenizerFast does (it rebuilds its post-processor from those flags).
 * When only one flag is set, the other keeps the post-processor's choice. (transformers 5.24's
 * LlamaTokenizer ignores both flags and always follows the post-processor; the two rules agree
 * whenever the flags match the post-processor, as in every checkpoint we ship.)
 */
export class Tokenizer {
  private constructor(
    private readonly hf: HfTokenizer,
    readonly bosId: number | undefined,
    readonly eosId: number | undefined,
    readonly padId: number,
    private readonly addBos: boolean | undefined,
    private readonly addEos: boolean | undefined,
  ) {}

  static async fromDir(dir: string): Promise<Tokenizer> {
    const tokJson = await readJson(join(dir, "tokenizer.json"));
    const tokConfig = await readJson(join(dir, "tokenizer_config.json"));
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokJson, tokConfig);
    } catch (e) {
      throw new MistralOnnxError(
        `${join(dir, "tokenizer.json")}: cannot load (${(e as Error).message})`,
        {
          file: join(dir, "tokenizer.json"),
        },
      );
    }
    const idOf = (spec: TokenSpec) => {
      const content = tokenContent(spec);
      return content === undefined ? undefined : hf.token_to_id(content);
    };
    const bosId = idOf(tokConfig.bos_token as TokenSpec);
    const eosId = idOf(tokConfig.eos_token as TokenSpec);
    const padId = idOf(tokConfig.pad_token as TokenSpec) ?? eosId ?? 0;
    const flag = (v: unknown) => (typeof v === "boolean" ? v : undefined);
    const addBos = flag(tokConfig.add_bos_token);
    const addEos = flag(tokConfig.add_eos_token);
    // A flag the config leaves out keeps the post-processor's choice for that token, so setting
    // only add_eos_token does not silently drop the BOS the post-processor adds.
    const pp =
      addBos === undefined || addEos === undefined
        ? postProcessorSpecials(hf, bosId, eosId)
        : { bos: false, eos: false };
    return new Tokenizer(
      hf,
      bosId,
      eosId,
      padId,
      addBos === undefined && addEos === undefined ? undefined : (addBos ?? pp.bos),
      addBos === undefined && addEos === undefined ? undefined : (addEos ?? pp.eos),
    );
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const addSpecial = opts.addSpecialTokens ?? true;
    if (!addSpecial) return this.hf.encode(text, { add_special_tokens: false }).ids;
    if (this.addBos === undefined && this.addEos === undefined) {
      return this.hf.encode(text, { add_special_tokens: true }).ids;
    }
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    const out: number[] = [];
    if (this.addBos && this.bosId !== undefined) out.push(this.bosId);
    out.push(...ids);
    if (this.addEos && this.eosId !== undefined) out.push(this.eosId);
    return out;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens ?? false;
    const kept = skip ? ids.filter((id) => !this.specialIds.has(id)) : ids;
    if (kept.length === 0) return ""; // the library rejects an empty list
    return this.hf.decode(this.replaceInvalidByteRuns(kept), { skip_special_tokens: skip });
  }

  /** Whether `id` is a special token (dropped by `decode` with skipSpecialTokens). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /**
   * Whether `id` is a byte-fallback token (`<0xNN>`). A run of them decodes as one: bytes that
   * are valid UTF-8 alone turn into U+FFFD once an invalid byte joins the run, so a streamer
   * settles a run's text only when a token that is not a byte ends it.
   */
  isByteToken(id: number): boolean {
    return this.byteTokens.has(id);
  }

  /** Byte-fallback token id → its byte. */
  private get byteTokens(): Map<number, number> {
    if (!this.byteCache) {
      this.byteCache = new Map();
      for (let b = 0; b < 256; b++) {
        const id = this.hf.token_to_id(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
        if (id !== undefined) this.byteCache.set(id, b);
      }
    }
    return this.byteCache;
  }

  private get specialIds(): Set<number> {
    if (!this.specialCache) {
      this.specialCache = new Set(
        [...this.hf.get_added_tokens_decoder().entries()]
          .filter(([, t]) => t.special)
          .map(([id]) => id),
      );
    }
    return this.specialCache;
  }
  private specialCache: Set<number> | undefined;
  private byteCache: Map<number, number> | undefined;

  /**
   * Python `tokenizers`' ByteFallback decoder turns a run of byte tokens that is not valid UTF-8
   * into one U+FFFD per byte; @huggingface/tokenizers decodes such a run lossily. We match
   * Python by swapping each byte of an invalid run for the byte tokens of U+FFFD (EF BF BD).
   */
  private replaceInvalidByteRuns(ids: number[]): number[] {
    const bytes = this.byteTokens;
    const replacement = [0xef, 0xbf, 0xbd].map(
      (b) => [...bytes.entries()].find(([, v]) => v === b)?.[0],
    );
    if (bytes.size < 256 || replacement.some((x) => x === undefined)) return ids;
    const fatal = new TextDecoder("utf-8", { fatal: true });
    const out: number[] = [];
    let i = 0;
    while (i < ids.length) {
      if (!bytes.has(ids[i] as number)) {
        out.push(ids[i++] as number);
        continue;
      }
      let j = i;
      while (j < ids.length && bytes.has(ids[j] as number)) j++;
      const run = ids.slice(i, j);
      let valid = true;
      try {
        fatal.decode(Uint8Array.from(run.map((id) => bytes.get(id) as number)));
      } catch {
        valid = false;
      }
      if (valid) out.push(...run);
      else for (let k = i; k < j; k++) out.push(...(replacement as number[]));
      i = j;
    }
    return out;
  }

  get vocabSize(): number {
    return this.hf.get_vocab(true).size;
  }
}

/**
 * Strict UTF-8 decoding for untrusted files: invalid bytes are an error with their position,
 * never a silent U+FFFD (which would change a prompt without a word).
 */

/**
 * Byte offset of the first invalid UTF-8 sequence in `bytes` (overlong forms, UTF-16
 * surrogates, code points past U+10FFFF, stray or missing continuation bytes), or -1.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number; // smallest valid second byte
    let max: number; // largest valid second byte
    if (b >= 0xc2 && b <= 0xdf) [need, min, max] = [1, 0x80, 0xbf];
    else if (b === 0xe0)
      [need, min, max] = [2, 0xa0, 0xbf]; // no overlongs
    else if (b === 0xed)
      [need, min, max] = [2, 0x80, 0x9f]; // no surrogates
    else if (b >= 0xe1 && b <= 0xef) [need, min, max] = [2, 0x80, 0xbf];
    else if (b === 0xf0)
      [need, min, max] = [3, 0x90, 0xbf]; // no overlongs
    else if (b >= 0xf1 && b <= 0xf3) [need, min, max] = [3, 0x80, 0xbf];
    else if (b === 0xf4)
      [need, min, max] = [3, 0x80, 0x8f]; // ≤ U+10FFFF
    else return i; // continuation byte without a lead, 0xC0/0xC1, 0xF5..0xFF
    if (i + need >= n) return i; // truncated at the end of the file
    const second = bytes[i + 1]!;
    if (second < min || second > max) return i;
    for (let k = 2; k <= need; k++) {
      const c = bytes[i + k]!;
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/**
 * Decodes strict UTF-8 (a leading BOM is dropped), or returns where it first goes wrong. The
 * platform's fatal decoder validates; the byte scan runs only on failure, to say where.
 */
export function decodeUtf8Strict(
  bytes: Uint8Array,
): { ok: true; text: string } | { ok: false; offset: number; line: number } {
  try {
    return { ok: true, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    const offset = Math.max(0, firstInvalidUtf8(bytes));
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
    return { ok: false, offset, line };
  }
}

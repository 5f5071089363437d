// Uses @merge/tensor-io (write + read a safetensors file, bf16 round trip) and @merge/eval
// (choice literal, exact match, ROUGE); throws on any mismatch, prints one line on success.
"use strict";

module.exports = async function check(tensorIo, evalPkg, fs, label) {
  const { SafetensorsFile, bf16ToF32, f32ToBf16, writeSafetensors } = tensorIo;
  const { exactMatch, parseChoiceLiteral, rougeScores } = evalPkg;
  const dir = fs.mkdtempSync(fs.join(fs.tmpdir(), "merge-pack-io-"));
  try {
    const values = Float32Array.from([1, -2.5, 0.125, 3]);
    const file = fs.join(dir, "t.safetensors");
    await writeSafetensors(file, [
      { name: "w", dtype: "F32", shape: [2, 2], data: new Uint8Array(values.buffer) },
    ]);
    const st = await SafetensorsFile.open(file);
    const back = await st.readF32("w");
    await st.close();
    if (back.join() !== values.join()) throw new Error(`safetensors round trip: ${back}`);
    const bf = bf16ToF32(f32ToBf16(values));
    if (bf.join() !== values.join()) throw new Error(`bf16 round trip: ${bf}`);
    const choices = parseChoiceLiteral("['yes', 'no']");
    if (choices.join("|") !== "yes|no") throw new Error(`choices: ${choices}`);
    if (!exactMatch(" Yes ", "yes")) throw new Error("exactMatch");
    const rougeL = rougeScores("the cat sat on the mat", "the cat sat").rougeL;
    if (rougeL.precision !== 1 || rougeL.recall !== 0.5)
      throw new Error(`rougeL: ${JSON.stringify(rougeL)}`);
    console.log(
      `io ${label} ok: safetensors write/read, bf16, choice literal, exact match, ROUGE-L`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};

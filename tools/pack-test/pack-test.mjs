// Pack test: the published tarballs install and import outside the workspace.
//
// Packs every publishable package with `pnpm pack` (so publishConfig applies, as on publish),
// checks each tarball's contents and package.json, installs all of them with npm into a fresh
// `npm init -y` (CommonJS) project in os.tmpdir() (`--ignore-scripts`: onnxruntime-node's
// install script would download CUDA libraries; third-party dependencies come from the npm
// registry or cache), then runs ESM and CommonJS consumers, a browser bundle of
// @merge/strategies and a TypeScript (nodenext) typecheck of ESM and CommonJS consumers.
// Run it with `pnpm test:pack` (builds first). MERGE_PACK_TEST_KEEP=1 keeps the temp folder.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runInNewContext } from "node:vm";
import { build } from "esbuild";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
const PACKAGES = ["tensor-io", "lora", "strategies", "mistral-onnx", "eval"];
const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
let failures = 0;

function step(name, fn) {
  try {
    const detail = fn();
    console.log(`ok   ${name}${detail ? `: ${detail}` : ""} (${elapsed()})`);
    return detail;
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}\n${e instanceof Error ? e.stderr?.toString() || e.message : e}`);
    return undefined;
  }
}

function run(cmd, args, cwd, extraEnv = {}) {
  return execFileSync(cmd, args, {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...extraEnv },
  }).trim();
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const work = mkdtempSync(join(tmpdir(), "merge-pack-test-"));
const tarballs = join(work, "tarballs");
const app = join(work, "app");
mkdirSync(tarballs);
mkdirSync(app);
console.log(`pack test in ${work}`);

try {
  // 1. Pack, and check what a tarball holds.
  for (const p of PACKAGES) {
    step(`pack @merge/${p}`, () => {
      run("pnpm", ["pack", "--pack-destination", tarballs], join(ROOT, "packages", p));
      const tgz = readdirSync(tarballs).find((f) => f.startsWith(`merge-${p}-`));
      assert(tgz, "no tarball written");
      const files = run("tar", ["-tzf", join(tarballs, tgz)], work).split("\n");
      for (const f of ["LICENSE", "README.md", "package.json", "dist/index.js", "dist/index.d.ts"])
        assert(files.includes(`package/${f}`), `${tgz} lacks ${f}`);
      assert(!files.some((f) => f.startsWith("package/src/")), `${tgz} ships src/`);
      const pkg = JSON.parse(
        run("tar", ["-xzOf", join(tarballs, tgz), "package/package.json"], work),
      );
      const exportsText = JSON.stringify(pkg.exports);
      assert(!exportsText.includes("source"), `published exports keep "source": ${exportsText}`);
      assert(
        pkg.exports["."].default === "./dist/index.js",
        `no default condition: ${exportsText}`,
      );
      assert(pkg.exports["."].types === "./dist/index.d.ts", `no types condition: ${exportsText}`);
      assert(pkg.engines?.node === ">=20.19", `engines: ${JSON.stringify(pkg.engines)}`);
      assert(pkg.license === "MIT", `license: ${pkg.license}`);
      const deps = JSON.stringify(pkg.dependencies ?? {});
      assert(!deps.includes("workspace:"), `workspace: protocol left in dependencies: ${deps}`);
      return `${tgz}, ${files.length} files`;
    });
  }

  // 2. A fresh CommonJS project outside the workspace; install the tarballs with npm.
  step("npm init -y", () => {
    run("npm", ["init", "-y"], app);
    const type = JSON.parse(readFileSync(join(app, "package.json"), "utf8")).type;
    assert(type === undefined || type === "commonjs", `npm init -y gave type ${type}`);
    return `type ${type ?? "(unset: commonjs)"}`;
  });
  step("npm install tarballs --ignore-scripts --prefer-offline", () => {
    const tgzs = readdirSync(tarballs).map((f) => join(tarballs, f));
    run(
      "npm",
      ["install", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund", ...tgzs],
      app,
    );
    // Every @merge/* dependency must resolve to the packed tarball, never the registry.
    const lock = JSON.parse(readFileSync(join(app, "package-lock.json"), "utf8"));
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (!path.includes("node_modules/@merge/")) continue;
      assert(path.split("node_modules/").length === 2, `nested copy ${path}`);
      assert(entry.resolved?.startsWith("file:"), `${path} resolved from ${entry.resolved}`);
    }
    return `${Object.keys(lock.packages).length - 1} packages`;
  });
  for (const f of readdirSync(join(HERE, "consumer")))
    copyFileSync(join(HERE, "consumer", f), join(app, f));

  // 3. Consumers: ESM, CommonJS (require of the ESM build, Node >= 20.19), the source condition.
  const esm = step("ESM import @merge/strategies", () => run("node", ["strategies-esm.mjs"], app));
  const cjs = step("CJS require @merge/strategies", () => run("node", ["strategies-cjs.cjs"], app));
  step("ESM and CJS merges agree", () => assert(esm && esm === cjs, `${esm}\n${cjs}`));
  step("require + import share one copy", () => run("node", ["same-copy.cjs"], app));
  step("node --conditions=source (not published, so ignored)", () => {
    const out = run("node", ["--conditions=source", "strategies-cjs.cjs"], app);
    assert(out === esm, out);
  });
  step("ESM import @merge/tensor-io + @merge/eval", () => run("node", ["io-esm.mjs"], app));
  step("CJS require @merge/tensor-io + @merge/eval", () => run("node", ["io-cjs.cjs"], app));
  step("ESM import @merge/mistral-onnx", () => run("node", ["onnx-esm.mjs"], app));
  step("CJS require @merge/mistral-onnx", () => run("node", ["onnx-cjs.cjs"], app));

  // 4. Browser bundle of @merge/strategies: no node: imports, runs with no Node globals.
  const bundle = await build({
    absWorkingDir: app,
    entryPoints: ["browser-entry.mjs"],
    bundle: true,
    platform: "browser",
    format: "iife",
    write: false,
    logLevel: "silent",
  }).catch((e) => e);
  step("esbuild --platform=browser @merge/strategies", () => {
    assert(!(bundle instanceof Error), bundle.message);
    const code = bundle.outputFiles[0].text;
    assert(!/["'`]node:/.test(code), "bundle contains a node: import");
    assert(!/\brequire\(/.test(code), "bundle contains require(");
    const lines = [];
    runInNewContext(code, { console: { log: (s) => lines.push(String(s)) } });
    assert(lines[0] === esm, `browser bundle printed ${lines[0]}, ESM ${esm}`);
    return `${(code.length / 1024).toFixed(0)} KiB, same merge output`;
  });

  // 5. Types for TypeScript consumers, ESM (.mts) and CommonJS (.cts), module nodenext.
  step("tsc --module nodenext (ESM .mts + CJS .cts consumers)", () => {
    const tsc = join(
      dirname(createRequire(import.meta.url).resolve("typescript/package.json")),
      "bin/tsc",
    );
    run("node", [tsc, "-p", "tsconfig.json"], app);
    return `typescript ${run("node", [tsc, "-v"], app)}`;
  });
  if (esm) console.log(`  ${esm}`);
} finally {
  if (process.env.MERGE_PACK_TEST_KEEP) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

console.log(failures === 0 ? `pack test passed in ${elapsed()}` : `pack test: ${failures} failed`);
process.exitCode = failures === 0 ? 0 : 1;

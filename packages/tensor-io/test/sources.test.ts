import { spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseSourceSpec, SourceError, resolveSource } from "../src/index.js";
import { withTempDir } from "./helpers.js";

const SHA = "0123456789abcdef0123456789abcdef01234567";
const OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98";

/**
 * Lays out a Hub cache exactly as Python's huggingface_hub does:
 * models--owner--name/{refs/main, blobs/<etag>, snapshots/<sha>/<file> -> ../../blobs/<etag>}.
 */
async function layOutCache(
  cacheDir: string,
  files: Record<string, string>,
  opts: { dangling?: string } = {},
) {
  const repoDir = join(cacheDir, "models--acme--tiny-model");
  await mkdir(join(repoDir, "refs"), { recursive: true });
  await mkdir(join(repoDir, "blobs"), { recursive: true });
  await writeFile(join(repoDir, "refs", "main"), SHA); // no trailing newline, like huggingface_hub
  for (const [i, [path, content]] of Object.entries(files).entries()) {
    const etag = `blob${i}`.padEnd(40, "0");
    const link = join(repoDir, "snapshots", SHA, path);
    await mkdir(join(link, ".."), { recursive: true });
    if (path !== opts.dangling) await writeFile(join(repoDir, "blobs", etag), content);
    const depth = path.split("/").length - 1;
    await symlink(`${"../".repeat(depth + 2)}blobs/${etag}`, link);
  }
  return join(repoDir, "snapshots", SHA);
}

const FILES = {
  "config.json": '{"model_type":"mistral"}',
  "model.safetensors": "weights",
  "sub/tokenizer.json": "{}",
};

const ENV_KEYS = [
  "HF_HUB_OFFLINE",
  "HF_HUB_CACHE",
  "HF_HOME",
  "HUGGINGFACE_HUB_CACHE",
  "HF_TOKEN",
  "HF_TOKEN_PATH",
  "HF_ENDPOINT",
  "XDG_CACHE_HOME",
];
let savedEnv: Record<string, string | undefined>;
beforeEach(() => {
  savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  // Never read the real ~/.cache/huggingface/token: tests that want a token file set HF_HOME.
  process.env.HF_HOME = join(tmpdir(), "tensor-io-test-no-hf-home");
});
afterEach(() => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

async function sourceError(promise: Promise<unknown>): Promise<SourceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  return error as SourceError;
}

describe("resolveSource: local folders", () => {
  it("resolves ./relative, absolute and existing bare folders; rejects a missing one", async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "config.json"), "{}");
      expect(await resolveSource(dir)).toEqual({ dir, kind: "local" });
      const cwd = process.cwd();
      process.chdir(join(dir, ".."));
      try {
        const name = dir.split("/").pop()!;
        expect((await resolveSource(`./${name}`)).dir).toBe(dir);
      } finally {
        process.chdir(cwd);
      }
      expect(await resolveSource(dir, { files: ["config.json", "*.json"] })).toMatchObject({
        kind: "local",
      });
      const missingFile = await sourceError(resolveSource(dir, { files: ["tokenizer.json"] }));
      expect(missingFile.file).toBe(join(dir, "tokenizer.json"));
      await sourceError(resolveSource(join(dir, "nope")));
      await sourceError(resolveSource("not a spec!"));
    });
  });
});

describe("parseSourceSpec", () => {
  it("resolves relative folders against baseDir, else reads owner/name@revision", async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, "acme", "tiny"), { recursive: true });
      // An existing folder wins over a Hub name that looks the same (as in from_pretrained).
      expect(await parseSourceSpec("acme/tiny", { baseDir: dir })).toEqual({
        kind: "local",
        path: join(dir, "acme", "tiny"),
      });
      expect(await parseSourceSpec("./x/y", { baseDir: dir })).toEqual({
        kind: "local",
        path: join(dir, "x", "y"),
      });
      expect(await parseSourceSpec("acme/other@v1.0", { baseDir: dir })).toEqual({
        kind: "hub",
        repo: "acme/other",
        revision: "v1.0",
      });
      expect(await parseSourceSpec("acme/other", { baseDir: dir })).toMatchObject({
        revision: "main",
      });
      await sourceError(parseSourceSpec("data/zoo/base", { baseDir: dir }));
    });
  });
});

describe("resolveSource: Hub repos from a cache laid out like Python's (offline)", () => {
  it("finds the snapshot through refs/<revision>", async () => {
    await withTempDir(async (cacheDir) => {
      const snapshot = await layOutCache(cacheDir, FILES);
      const resolved = await resolveSource("acme/tiny-model@main", { cacheDir, offline: true });
      expect(resolved).toEqual({
        dir: snapshot,
        kind: "hub",
        repo: "acme/tiny-model",
        revision: "main",
        commit: SHA,
      });
      expect(await readFile(join(resolved.dir, "sub/tokenizer.json"), "utf8")).toBe("{}");
      // The revision defaults to main; a commit hash needs no ref.
      expect((await resolveSource("acme/tiny-model", { cacheDir, offline: true })).commit).toBe(
        SHA,
      );
      expect((await resolveSource(`acme/tiny-model@${SHA}`, { cacheDir, offline: true })).dir).toBe(
        snapshot,
      );
    });
  });

  it("reads HF_HUB_OFFLINE=1 and HF_HUB_CACHE / HF_HOME from the environment", async () => {
    await withTempDir(async (home) => {
      const snapshot = await layOutCache(join(home, "hub"), FILES);
      process.env.HF_HUB_OFFLINE = "1";
      process.env.HF_HOME = home;
      expect((await resolveSource("acme/tiny-model@main")).dir).toBe(snapshot);
      process.env.HF_HUB_CACHE = join(home, "elsewhere");
      const error = await sourceError(resolveSource("acme/tiny-model@main"));
      expect(error.file).toContain(join(home, "elsewhere"));
    });
  });

  it("checks requested files and globs; a missing file names itself and repo@revision", async () => {
    await withTempDir(async (cacheDir) => {
      await layOutCache(cacheDir, FILES, { dangling: "model.safetensors" });
      await expect(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          offline: true,
          files: ["config.json", "**/*.json"],
        }),
      ).resolves.toMatchObject({ commit: SHA });
      const missing = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          offline: true,
          files: ["config.json", "generation_config.json"],
        }),
      );
      expect(missing.message).toMatch(
        /HF_HUB_OFFLINE=1.*"generation_config\.json" of acme\/tiny-model@main/,
      );
      // A snapshot link whose blob is gone counts as missing.
      const dangling = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          offline: true,
          files: ["model.safetensors"],
        }),
      );
      expect(dangling.message).toMatch(/lacks "model\.safetensors"/);
      const glob = await sourceError(
        resolveSource("acme/tiny-model@main", { cacheDir, offline: true, files: ["*.bin"] }),
      );
      expect(glob.message).toMatch(/no cached file matches "\*\.bin"/);
    });
  });

  it("an uncached revision or commit is a clear error", async () => {
    await withTempDir(async (cacheDir) => {
      await layOutCache(cacheDir, FILES);
      const rev = await sourceError(
        resolveSource("acme/tiny-model@dev", { cacheDir, offline: true }),
      );
      expect(rev.message).toMatch(/acme\/tiny-model@dev is not in the Hub cache/);
      const commit = await sourceError(
        resolveSource(`acme/tiny-model@${OTHER_SHA}`, { cacheDir, offline: true }),
      );
      expect(commit.message).toMatch(/has no cached snapshot/);
      await sourceError(resolveSource("acme/other@main", { cacheDir, offline: true }));
    });
  });
});

/** A minimal in-memory Hub answering the endpoints @huggingface/hub calls for a download. */
function fakeHub(files: Record<string, string>, opts: { token?: string } = {}) {
  const calls: string[] = [];
  const oid = (path: string) => Buffer.from(path).toString("hex").padEnd(40, "0").slice(0, 40);
  const fetchImpl: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const headers = new Headers(init?.headers);
    calls.push(`${init?.method ?? "GET"} ${url.pathname}`);
    if (opts.token !== undefined && headers.get("authorization") !== `Bearer ${opts.token}`) {
      return new Response(
        JSON.stringify({ error: "Invalid credentials in Authorization header" }),
        {
          status: 401,
          headers: { "content-type": "application/json" },
        },
      );
    }
    const json = (body: unknown) =>
      new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });
    const entry = (path: string) => ({
      type: "file",
      path,
      size: files[path]!.length,
      oid: oid(path),
      lastCommit: { id: SHA, title: "x", date: "2026-01-01" },
    });
    // Any revision resolves (a lenient or hostile Hub): the client must vet revisions itself.
    if (url.pathname.startsWith("/api/models/acme/tiny-model/revision/"))
      return json({ id: "acme/tiny-model", sha: SHA });
    if (url.pathname === `/api/models/acme/tiny-model/tree/${SHA}`)
      return json(Object.keys(files).map(entry));
    if (url.pathname === `/api/models/acme/tiny-model/paths-info/${SHA}`) {
      const { paths } = JSON.parse(String(init?.body)) as { paths: string[] };
      return json(paths.filter((p) => p in files).map(entry));
    }
    const prefix = `/acme/tiny-model/resolve/${SHA}/`;
    if (url.pathname.startsWith(prefix)) {
      const content = files[decodeURIComponent(url.pathname.slice(prefix.length))];
      if (content === undefined)
        return new Response("", { status: 404, headers: { "X-Error-Code": "EntryNotFound" } });
      const range = headers.get("range");
      if (range === "bytes=0-0") {
        return new Response(content.slice(0, 1), {
          status: 206,
          headers: {
            "content-range": `bytes 0-0/${content.length}`,
            etag: `"${oid(url.pathname)}"`,
          },
        });
      }
      return new Response(content, { headers: { "content-length": String(content.length) } });
    }
    return new Response("not found", { status: 404 });
  };
  return { fetch: fetchImpl, calls };
}

describe("resolveSource: Hub repos online (mocked Hub, no network)", () => {
  it("downloads into the Python cache layout, records refs/main, reports progress, then serves offline", async () => {
    await withTempDir(async (cacheDir) => {
      const hub = fakeHub(FILES);
      const events: Array<{ file: string; loaded: number; total?: number }> = [];
      const resolved = await resolveSource("acme/tiny-model@main", {
        cacheDir,
        fetch: hub.fetch,
        hubUrl: "https://hub.test",
        files: ["*.json", "sub/*"],
        onProgress: (e) => events.push(e),
      });
      expect(resolved).toMatchObject({
        kind: "hub",
        commit: SHA,
        dir: join(cacheDir, "models--acme--tiny-model", "snapshots", SHA),
      });
      expect(await readFile(join(resolved.dir, "config.json"), "utf8")).toBe(FILES["config.json"]);
      expect(await readFile(join(resolved.dir, "sub/tokenizer.json"), "utf8")).toBe("{}");
      expect(await readlink(join(resolved.dir, "config.json"))).toMatch(/^\.\.\/\.\.\/blobs\//);
      expect(
        await readFile(join(cacheDir, "models--acme--tiny-model", "refs", "main"), "utf8"),
      ).toBe(SHA);
      // model.safetensors was not requested.
      await expect(readFile(join(resolved.dir, "model.safetensors"))).rejects.toThrow();
      expect(events.filter((e) => e.file === "config.json").at(-1)).toEqual({
        file: "config.json",
        loaded: 24,
        total: 24,
      });
      expect(new Set(events.map((e) => e.file))).toEqual(
        new Set(["config.json", "sub/tokenizer.json"]),
      );

      // What was downloaded now resolves with no network at all.
      await expect(
        resolveSource("acme/tiny-model@main", { cacheDir, offline: true, files: ["config.json"] }),
      ).resolves.toMatchObject({
        commit: SHA,
      });
      // A file the repo does not have is named with repo@revision.
      const missing = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          fetch: hub.fetch,
          hubUrl: "https://hub.test",
          files: ["nope.bin"],
        }),
      );
      expect(missing.message).toMatch(/"nope\.bin" is not in acme\/tiny-model@main/);
    });
  });

  it("a refs/<revision> that cannot be written is a SourceError naming the ref file", async () => {
    await withTempDir(async (cacheDir) => {
      const ref = join(cacheDir, "models--acme--tiny-model", "refs", "main");
      // A folder where the ref file belongs makes the (atomic) rename fail.
      await mkdir(join(ref, "blocker"), { recursive: true });
      const error = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          fetch: fakeHub(FILES).fetch,
          hubUrl: "https://hub.test",
          files: ["config.json"],
        }),
      );
      expect(error.file).toBe(ref);
      expect(error.message).toMatch(/cannot record revision "main"/);
      // No temp file is left next to it.
      expect(await readdir(join(cacheDir, "models--acme--tiny-model", "refs"))).toEqual(["main"]);
    });
  });

  it("sends HF_TOKEN to the Hub and never puts it into an error", async () => {
    await withTempDir(async (cacheDir) => {
      const token = "hf_secretSecretSecret123";
      process.env.HF_TOKEN = token;
      const hub = fakeHub(FILES, { token });
      await expect(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          fetch: hub.fetch,
          hubUrl: "https://hub.test",
          files: ["config.json"],
        }),
      ).resolves.toMatchObject({ commit: SHA });
      const wrong = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          fetch: hub.fetch,
          hubUrl: "https://hub.test",
          token: "hf_wrongWrongWrong456",
        }),
      );
      expect(wrong.message).toMatch(/acme\/tiny-model@main/);
      expect(`${wrong.message} ${String(wrong.stack)}`).not.toContain("hf_wrongWrongWrong456");
      expect(`${wrong.message} ${String(wrong.stack)}`).not.toContain(token);
    });
  });
});

describe("D5: a Hub revision cannot leave refs/ or the cache", () => {
  it.each([
    "../../../x",
    "../../evilref",
    "a/../b",
    "/abs",
    "-rf",
    "a\\b",
    "a\u0001b",
    "a..b",
    "v1.lock",
    "a/.hidden",
    "a//b",
    "a/",
    "a.",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[b",
    ".",
  ])("parseSourceSpec rejects revision %j", async (revision) => {
    const error = await sourceError(parseSourceSpec(`acme/tiny-model@${revision}`));
    expect(error.message).toMatch(/not a valid revision/);
  });

  it.each(["main", "v1.0", "refs/pr/1", "refs/convert/parquet", "feature/x-y_z", SHA])(
    "parseSourceSpec accepts revision %j",
    async (revision) => {
      expect(await parseSourceSpec(`acme/tiny-model@${revision}`)).toEqual({
        kind: "hub",
        repo: "acme/tiny-model",
        revision,
      });
    },
  );

  it("offline, owner/name@../../evilref does not read a ref outside refs/", async () => {
    await withTempDir(async (root) => {
      const cacheDir = join(root, "cache");
      await layOutCache(cacheDir, FILES);
      // A file an attacker controls, where refs/../../evilref points.
      await writeFile(join(cacheDir, "evilref"), SHA);
      const error = await sourceError(
        resolveSource("acme/tiny-model@../../evilref", { cacheDir, offline: true }),
      );
      expect(error.message).toMatch(/not a valid revision/);
    });
  });

  it("online, owner/name@../../../x writes nothing outside the cache", async () => {
    await withTempDir(async (root) => {
      const cacheDir = join(root, "cache");
      await mkdir(cacheDir);
      const hub = fakeHub(FILES);
      const error = await sourceError(
        resolveSource("acme/tiny-model@../../../x", {
          cacheDir,
          fetch: hub.fetch,
          hubUrl: "https://hub.test",
          files: ["config.json"],
        }),
      );
      expect(error.message).toMatch(/not a valid revision/);
      expect(await readdir(root)).toEqual(["cache"]);
      expect(hub.calls).toEqual([]);
    });
  });

  it("refPath itself refuses a revision that leaves refs/, whoever calls it", async () => {
    const { refPath } = await import("../src/sources/hub-cache.js");
    expect(refPath("/c", "acme/m", "refs/pr/1")).toBe(
      join("/c", "models--acme--m", "refs", "refs/pr/1"),
    );
    for (const bad of ["../../x", "..", "a/../../b", ""]) {
      expect(() => refPath("/c", "acme/m", bad)).toThrow(SourceError);
    }
  });

  it("a Hub file listing with a path that leaves the snapshot is refused before any download", async () => {
    await withTempDir(async (root) => {
      const cacheDir = join(root, "cache");
      const base = fakeHub(FILES);
      const evil: typeof fetch = async (input, init) => {
        if (new URL(String(input)).pathname.includes("/tree/")) {
          const entry = {
            type: "file",
            path: "../../../../escaped.txt",
            size: 1,
            oid: "a".repeat(40),
          };
          return new Response(JSON.stringify([entry]), {
            headers: { "content-type": "application/json" },
          });
        }
        return base.fetch(input, init);
      };
      const error = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          fetch: evil,
          hubUrl: "https://hub.test",
        }),
      );
      expect(error.message).toMatch(/leaves the snapshot folder/);
      expect(await readdir(root)).toEqual(["cache"]);
    });
  });
});

describe("Hub error bodies that echo credentials are redacted in every SourceError", () => {
  /** A Hub that rejects every call with a body echoing the Authorization header it received. */
  function echoingHub(kind: "json" | "text"): typeof fetch {
    return async (_input, init) => {
      const auth = new Headers(init?.headers).get("authorization") ?? "";
      const body = `Invalid credentials in Authorization header: ${auth} (token ${auth.replace(/^Bearer /, "")})`;
      return kind === "json"
        ? new Response(JSON.stringify({ error: body }), {
            status: 401,
            headers: { "content-type": "application/json" },
          })
        : new Response(body, { status: 500, headers: { "content-type": "text/plain" } });
    };
  }

  it.each([
    [
      "an hf_ token from HF_TOKEN, JSON body",
      "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
      "env",
      "json",
    ],
    [
      "an hf_ token passed as an option, JSON body",
      "hf_ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210",
      "option",
      "json",
    ],
    [
      "an hf_ token, text body (kept in the library error's data)",
      "hf_TextBodyToken000000000000000000000",
      "option",
      "text",
    ],
  ] as const)("%s", async (_what, token, via, kind) => {
    await withTempDir(async (cacheDir) => {
      if (via === "env") process.env.HF_TOKEN = token;
      const error = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          fetch: echoingHub(kind),
          hubUrl: "https://hub.test",
          ...(via === "option" ? { token } : {}),
        }),
      );
      expect(error.message).toMatch(/acme\/tiny-model@main/);
      // A JSON body's "error" is part of the library's message; a text body only of its data.
      if (kind === "json") expect(error.message).toContain("[redacted]");
      // Nothing reachable from the error carries the token: message, stack, cause chain.
      const everything = `${error.message} ${error.stack} ${inspect(error, { depth: 10 })}`;
      expect(everything).not.toContain(token);
      expect(everything).not.toMatch(/Bearer (?!\[redacted\])/);
    });
  });

  it("redactSecrets removes Bearer credentials, hf_ tokens and given values", async () => {
    const { redactSecrets } = await import("../src/sources/redact.js");
    expect(
      redactSecrets("Authorization: Bearer abc.def-123 and hf_abcdefghijklmnop, also mine42x", [
        "mine42x",
      ]),
    ).toBe("Authorization: Bearer [redacted] and [redacted], also [redacted]");
    expect(redactSecrets("no secrets here", [])).toBe("no secrets here");
  });
});

const HAS_MKFIFO =
  process.platform !== "win32" && spawnSync("mkfifo", ["--help"]).error === undefined;

describe("Hub access like huggingface_hub: token file, cache fallback, login hints", () => {
  const HUB = { hubUrl: "https://hub.test" };

  /** A fetch that fails the way Node's fetch does when nothing answers; counts its calls. */
  function deadNetwork(kind: "dns" | "refused" | "timeout", leak = "") {
    const fetchImpl: typeof fetch & { calls: number } = Object.assign(
      async (): Promise<Response> => {
        fetchImpl.calls++;
        if (kind === "timeout") {
          throw new DOMException(
            `The operation was aborted due to timeout ${leak}`,
            "TimeoutError",
          );
        }
        const [code, message] =
          kind === "dns"
            ? ["ENOTFOUND", `getaddrinfo ENOTFOUND hub.test ${leak}`]
            : ["ECONNREFUSED", `connect ECONNREFUSED 127.0.0.1:443 ${leak}`];
        throw new TypeError("fetch failed", { cause: Object.assign(new Error(message), { code }) });
      },
      { calls: 0 },
    );
    return fetchImpl;
  }

  /** A Hub that answers every request with `status` (and a JSON error body). */
  function answering(status: number): typeof fetch {
    return async () =>
      new Response(JSON.stringify({ error: `status ${status} from the Hub` }), {
        status,
        headers: { "content-type": "application/json" },
      });
  }

  function collect(): { warnings: string[]; onWarning: (m: string) => void } {
    const warnings: string[] = [];
    return { warnings, onWarning: (m) => warnings.push(m) };
  }

  it("sends the token file $HF_HOME/token (trimmed) and never shows it in an error", async () => {
    await withTempDir(async (home) => {
      const token = "hf_fromTheTokenFile0123456789";
      process.env.HF_HOME = home;
      await writeFile(join(home, "token"), `  ${token}\n`);
      const hub = fakeHub(FILES, { token }); // 401 unless "Authorization: Bearer <token>"
      const resolved = await resolveSource("acme/tiny-model@main", {
        cacheDir: join(home, "hub"),
        fetch: hub.fetch,
        ...HUB,
        files: ["config.json"],
      });
      expect(resolved.commit).toBe(SHA);
      expect(hub.calls.length).toBeGreaterThan(0);

      // A Hub that refuses the token (and echoes it): the error names the file, not the value.
      const refusing = fakeHub(FILES, { token: "hf_someOtherToken000000" });
      const echo: typeof fetch = async (input, init) => {
        const response = await refusing.fetch(input, init);
        if (response.status !== 401) return response;
        const auth = new Headers(init?.headers).get("authorization");
        return new Response(JSON.stringify({ error: `bad token ${auth} ${token}` }), {
          status: 401,
          headers: { "content-type": "application/json" },
        });
      };
      const error = await sourceError(
        resolveSource("acme/tiny-model@main", { cacheDir: join(home, "hub"), fetch: echo, ...HUB }),
      );
      expect(error.message).toContain(`the token from ${join(home, "token")} was refused`);
      expect(error.message).toContain("hf auth login");
      const everything = `${error.message} ${error.stack} ${inspect(error, { depth: 10 })}`;
      expect(everything).not.toContain(token);
    });
  });

  it("HF_TOKEN_PATH names the token file instead of $HF_HOME/token", async () => {
    await withTempDir(async (home) => {
      process.env.HF_HOME = home;
      await writeFile(join(home, "token"), "hf_notThisOne000000000");
      process.env.HF_TOKEN_PATH = join(home, "elsewhere-token");
      await writeFile(process.env.HF_TOKEN_PATH, "hf_thisOneFromTokenPath00\n");
      const hub = fakeHub(FILES, { token: "hf_thisOneFromTokenPath00" });
      await expect(
        resolveSource("acme/tiny-model@main", {
          cacheDir: join(home, "hub"),
          fetch: hub.fetch,
          ...HUB,
          files: ["config.json"],
        }),
      ).resolves.toMatchObject({ commit: SHA });
    });
  });

  it("HF_TOKEN wins over the token file, and the token option over both", async () => {
    await withTempDir(async (home) => {
      process.env.HF_HOME = home;
      await writeFile(join(home, "token"), "hf_fileTokenLoses000000");
      process.env.HF_TOKEN = "hf_envTokenWins00000000";
      const opts = { cacheDir: join(home, "hub"), ...HUB, files: ["config.json"] };
      await expect(
        resolveSource("acme/tiny-model@main", {
          ...opts,
          fetch: fakeHub(FILES, { token: "hf_envTokenWins00000000" }).fetch,
        }),
      ).resolves.toMatchObject({ commit: SHA });
      await expect(
        resolveSource("acme/tiny-model@main", {
          ...opts,
          token: "hf_optionTokenWins00000",
          fetch: fakeHub(FILES, { token: "hf_optionTokenWins00000" }).fetch,
        }),
      ).resolves.toMatchObject({ commit: SHA });
      // token: false sends nothing at all.
      let sawAuth = false;
      const anon = fakeHub(FILES);
      await resolveSource("acme/tiny-model@main", {
        ...opts,
        token: false,
        fetch: async (input, init) => {
          if (new Headers(init?.headers).has("authorization")) sawAuth = true;
          return anon.fetch(input, init);
        },
      });
      expect(sawAuth).toBe(false);
    });
  });

  it.each(["folder", "fifo"] as const)(
    "a token file that cannot be read (%s) is skipped with a warning, never blocking",
    async (kind) => {
      if (kind === "fifo" && !HAS_MKFIFO) return;
      await withTempDir(async (home) => {
        process.env.HF_HOME = home;
        const path = join(home, "token");
        if (kind === "folder") await mkdir(path);
        else expect(spawnSync("mkfifo", [path]).status).toBe(0);
        const { warnings, onWarning } = collect();
        await expect(
          resolveSource("acme/tiny-model@main", {
            cacheDir: join(home, "hub"),
            fetch: fakeHub(FILES).fetch,
            ...HUB,
            files: ["config.json"],
            onWarning,
          }),
        ).resolves.toMatchObject({ commit: SHA });
        expect(warnings).toEqual([
          expect.stringContaining(`ignoring the Hub token file ${path}: it cannot be read`),
        ]);
      });
    },
  );

  it.each(["dns", "refused", "timeout"] as const)(
    "no network (%s), HF_HUB_OFFLINE unset: falls back to the cached snapshot with a warning",
    async (kind) => {
      await withTempDir(async (home) => {
        process.env.HF_HOME = home;
        const token = "hf_neverInAWarning0000000";
        await writeFile(join(home, "token"), token);
        const snapshot = await layOutCache(join(home, "hub"), FILES);
        const { warnings, onWarning } = collect();
        const net = deadNetwork(kind, `Bearer ${token}`);
        const resolved = await resolveSource("acme/tiny-model@main", {
          fetch: net,
          ...HUB,
          files: ["config.json"],
          onWarning,
        });
        expect(resolved).toEqual({
          dir: snapshot,
          kind: "hub",
          repo: "acme/tiny-model",
          revision: "main",
          commit: SHA,
        });
        expect(net.calls).toBeGreaterThan(0);
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(
          /the Hub could not be reached for acme\/tiny-model@main .*using the cached snapshot/,
        );
        expect(warnings[0]).toContain(snapshot);
        expect(warnings[0]).not.toContain(token);
        // A commit hash needs no ref.
        await expect(
          resolveSource(`acme/tiny-model@${SHA}`, { fetch: net, ...HUB, onWarning }),
        ).resolves.toMatchObject({ dir: snapshot });
      });
    },
  );

  it("Node's own fetch to a closed port (connection refused) falls back too", async () => {
    // A port that was just free: nothing listens there, so connect() is refused.
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const { port } = server.address() as AddressInfo;
    await new Promise((done) => server.close(done));
    await withTempDir(async (cacheDir) => {
      const snapshot = await layOutCache(cacheDir, FILES);
      const { warnings, onWarning } = collect();
      const resolved = await resolveSource("acme/tiny-model@main", {
        cacheDir,
        hubUrl: `http://127.0.0.1:${port}`,
        onWarning,
      });
      expect(resolved.dir).toBe(snapshot);
      expect(warnings[0]).toMatch(/ECONNREFUSED.*using the cached snapshot/);
    });
  });

  it("a Hub that answers 503 also falls back to the cache", async () => {
    await withTempDir(async (cacheDir) => {
      const snapshot = await layOutCache(cacheDir, FILES);
      const { warnings, onWarning } = collect();
      const resolved = await resolveSource("acme/tiny-model@main", {
        cacheDir,
        fetch: answering(503),
        ...HUB,
        onWarning,
      });
      expect(resolved.dir).toBe(snapshot);
      expect(warnings[0]).toMatch(/HTTP 503.*using the cached snapshot/);
    });
  });

  it("no network and nothing cached: the error says the Hub was not reached and the cache has no copy", async () => {
    await withTempDir(async (cacheDir) => {
      const { warnings, onWarning } = collect();
      const error = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          fetch: deadNetwork("dns"),
          ...HUB,
          onWarning,
        }),
      );
      expect(error.message).toMatch(
        /the Hub could not be reached for acme\/tiny-model@main \(getaddrinfo ENOTFOUND hub\.test.*\) and the Hub cache has no copy of that revision/,
      );
      expect(warnings).toEqual([]);
      // Another revision of a cached repo, a commit hash with no snapshot, a missing file.
      await layOutCache(cacheDir, FILES);
      const dev = await sourceError(
        resolveSource("acme/tiny-model@dev", { cacheDir, fetch: deadNetwork("refused"), ...HUB }),
      );
      expect(dev.message).toMatch(
        /could not be reached .*no copy of that revision \(no refs\/dev\)/,
      );
      const sha = await sourceError(
        resolveSource(`acme/tiny-model@${OTHER_SHA}`, {
          cacheDir,
          fetch: deadNetwork("refused"),
          ...HUB,
        }),
      );
      expect(sha.message).toMatch(/could not be reached .*no copy of that revision/);
      const file = await sourceError(
        resolveSource("acme/tiny-model@main", {
          cacheDir,
          fetch: deadNetwork("timeout"),
          ...HUB,
          files: ["generation_config.json"],
        }),
      );
      expect(file.message).toMatch(
        /could not be reached .*the cache lacks "generation_config\.json"/,
      );
    });
  });

  it.each([401, 403])(
    "HTTP %i: no cache fallback; the message names the repo, its page and how to log in",
    async (status) => {
      await withTempDir(async (cacheDir) => {
        await layOutCache(cacheDir, FILES); // cached, but an answer from the Hub is not an outage
        const { warnings, onWarning } = collect();
        const error = await sourceError(
          resolveSource("acme/tiny-model@main", {
            cacheDir,
            fetch: answering(status),
            ...HUB,
            onWarning,
          }),
        );
        expect(error.message).toContain(`acme/tiny-model is gated or private`);
        expect(error.message).toContain(`HTTP ${status}; no token was sent`);
        expect(error.message).toContain(
          "accept the model's terms on its Hub page https://hub.test/acme/tiny-model",
        );
        expect(error.message).toMatch(/log in with `hf auth login` or set HF_TOKEN/);
        expect(warnings).toEqual([]);
      });
    },
  );

  it("HTTP 404 is reported as is: no fallback, no login hint", async () => {
    await withTempDir(async (cacheDir) => {
      await layOutCache(cacheDir, FILES);
      const error = await sourceError(
        resolveSource("acme/tiny-model@main", { cacheDir, fetch: answering(404), ...HUB }),
      );
      expect(error.message).toMatch(/looking up the revision failed for acme\/tiny-model@main/);
      expect(error.message).not.toContain("hf auth login");
    });
  });
});

describe("tokenFilePath follows huggingface_hub", () => {
  it("HF_TOKEN_PATH, else $HF_HOME/token, else $XDG_CACHE_HOME/huggingface/token", async () => {
    const { tokenFilePath } = await import("../src/sources/hub-auth.js");
    const { homedir } = await import("node:os");
    process.env.HF_HOME = "/h";
    expect(tokenFilePath()).toBe(join("/h", "token"));
    process.env.HF_TOKEN_PATH = "~/t";
    expect(tokenFilePath()).toBe(join(homedir(), "t"));
    delete process.env.HF_TOKEN_PATH;
    delete process.env.HF_HOME;
    process.env.XDG_CACHE_HOME = "/x";
    expect(tokenFilePath()).toBe(join("/x", "huggingface", "token"));
    delete process.env.XDG_CACHE_HOME;
    expect(tokenFilePath()).toBe(join(homedir(), ".cache", "huggingface", "token"));
  });
});

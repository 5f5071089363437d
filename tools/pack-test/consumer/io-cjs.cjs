"use strict";
const { mkdtempSync, rmSync } = require("node:fs");
const { tmpdir } = require("node:os");
const { join } = require("node:path");
const tensorIo = require("@merge/tensor-io");
const evalPkg = require("@merge/eval");
const check = require("./io-check.cjs");

check(tensorIo, evalPkg, { mkdtempSync, rmSync, tmpdir, join }, "cjs").catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

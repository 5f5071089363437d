// Writes configs/config.schema.json from the zod config schema (apps/submit/src/config.ts).
// `pnpm --filter submit schema`; a test checks the committed file equals the generated one.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { configSchemaText } from "../src/config.js";
import { findWorkspaceRoot } from "../src/workspace.js";

const file = join(findWorkspaceRoot(), "configs", "config.schema.json");
writeFileSync(file, configSchemaText());
process.stdout.write(`wrote ${file}\n`);

/** Child process: runs one case per IPC message, so the parent can kill it on a hang. */
import { executeCase, isTypedError, type RunTargetName } from "./targets.js";

interface Request {
  id: number;
  target: RunTargetName;
  dir: string;
  skipBadRows: boolean;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const stack = (error.stack ?? "").split("\n").slice(1, 4).join(" | ").trim();
    return `${error.name}: ${error.message.slice(0, 300)}${stack ? ` @ ${stack}` : ""}`;
  }
  return `non-Error thrown: ${String(error).slice(0, 300)}`;
}

process.on("message", (req: Request) => {
  executeCase(req.target, req.dir, { skipBadRows: req.skipBadRows }).then(
    (summary) => process.send?.({ id: req.id, outcome: "ok", summary }),
    (error: unknown) =>
      process.send?.({
        id: req.id,
        outcome: isTypedError(req.target, error) ? "typed-error" : "untyped-error",
        detail: describe(error),
      }),
  );
});
process.send?.({ ready: true });

/** `easel` command line: serve, worker, generate, models, pull, convert, keys. */
import { Command, CommanderError } from "commander";
import { isEaselError } from "../core/errors.ts";

/**
 * Commands load their module only when used: `serve` pulls in the HTTP stack and the dialects, which `generate`
 * does not need (and start-up time matters for scripted CLI use).
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import("./serve.ts")).serveCommand(),
  generate: async () => (await import("./generate.ts")).generateCommand(),
  models: async () => (await import("./models.ts")).modelsCommand(),
  pull: async () => (await import("./models.ts")).pullCommand(),
  convert: async () => (await import("./models.ts")).convertCommand(),
  keys: async () => (await import("./keys.ts")).keysCommand(),
  worker: async () => (await import("./worker.ts")).workerCommand(),
};

/** The program with `only` loaded (all commands when undefined or unknown, so help lists everything). */
export async function buildCli(only?: string): Promise<Command> {
  const program = new Command("easel")
    .description("Self-hosted image generation: OpenAI, Monica, Playground and Segmind APIs over diffusers checkpoints")
    .showHelpAfterError()
    .exitOverride();
  const names = only && COMMANDS[only] ? [only] : Object.keys(COMMANDS);
  for (const name of names) program.addCommand(await COMMANDS[name]());
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    const program = await buildCli(argv[2]);
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    if (isEaselError(e)) {
      console.error(`error: ${e.message}${e.param ? ` (${e.param})` : ""}`);
    } else {
      // Operational failures (port in use, unreadable directory, ...) are reported as one line, not a stack.
      console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    }
    process.exitCode = 1;
  }
}

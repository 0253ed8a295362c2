/** `easel` command line: serve, worker, generate, models, keys. */
import { Command, CommanderError } from "commander";
import { isEaselError } from "../core/errors.ts";
import { generateCommand } from "./generate.ts";
import { keysCommand } from "./keys.ts";
import { modelsCommand } from "./models.ts";
import { serveCommand } from "./serve.ts";

export function buildCli(): Command {
  const program = new Command("easel")
    .description("Self-hosted image generation: OpenAI, Monica, Playground and Segmind APIs over diffusers checkpoints")
    .showHelpAfterError()
    .exitOverride();
  program.addCommand(serveCommand());
  program.addCommand(generateCommand());
  program.addCommand(modelsCommand());
  program.addCommand(keysCommand());
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildCli();
  try {
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

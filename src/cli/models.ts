/** `easel models list`: what the server would register from the models directory and the config. */
import { cpus } from "node:os";
import { Command } from "commander";
import { configPaths, loadConfig } from "../config/index.ts";
import { Engine } from "../engine/engine.ts";
import { BUILTIN_MODEL } from "../config/builtin-model.ts";
import { discoverModels } from "../gateway/registry.ts";
import { createUpstreams } from "../gateway/upstreams.ts";

export function modelsCommand(): Command {
  const models = new Command("models").description("inspect installed models");
  models
    .command("list")
    .description("list the models found in the models directory and the config")
    .option("--models-dir <dir>", "models directory (default <data-dir>/models)")
    .option("--data-dir <dir>", "data directory")
    .option("--config <file>", "JSON config file")
    .option("--json", "print JSON")
    .action(async (o: { modelsDir?: string; dataDir?: string; config?: string; json?: boolean }) => {
      const config = loadConfig({
        file: o.config,
        flags: { ...(o.dataDir ? { dataDir: o.dataDir } : {}), models: o.modelsDir ? { dir: o.modelsDir } : {} },
      });
      const paths = configPaths(config);
      const engine = new Engine({ executionProvider: "cpu", intraOpThreads: cpus().length, cacheDir: paths.cacheDir });
      const upstreams = createUpstreams(config.providers);
      try {
        const registry = await discoverModels({
          modelsDir: paths.modelsDir,
          builtin: BUILTIN_MODEL,
          defaultModel: config.models.default,
          defaultAliases: config.models.defaultAliases,
          entries: config.models.entries,
          describe: (dir) => engine.describe(dir),
          describeUpstream: (provider, model) => upstreams.describe(provider, model),
          onSkip: (dir, e) => console.error(`skipping ${dir}: ${(e as Error).message}`),
        });
        const list = registry.list();
        if (o.json) console.log(JSON.stringify(list));
        else if (list.length === 0) console.log(`no models in ${paths.modelsDir}`);
        else {
          for (const m of list) {
            const d = m.defaults;
            const where = m.backend === "local" ? m.family : `${m.family} via ${m.backend}`;
            console.log(`${m.id}\t${where}\t${d.width}x${d.height}, ${d.steps} steps, guidance ${d.guidanceScale}\taliases: ${m.aliases.join(", ")}`);
          }
        }
      } finally {
        await upstreams.close();
        await engine.close();
      }
    });
  return models;
}

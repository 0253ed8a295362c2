/**
 * `easel models list|rm|pull` and `easel pull`: what the server would register from the models directory and the
 * config (with size on disk and where each folder came from), removing a model folder, pulling one from the hub.
 */
import { cpus } from "node:os";
import { basename, join } from "node:path";
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";
import { CONVERTED_DIR, convertSingleFile } from "../checkpoint/single-file.ts";
import { BUILTIN_MODEL } from "../config/builtin-model.ts";
import { type Config, configPaths, loadConfig } from "../config/index.ts";
import { Engine } from "../engine/engine.ts";
import { discoverModels } from "../gateway/registry.ts";
import { createUpstreams } from "../gateway/upstreams.ts";
import type { WeightVariant } from "../graph/safetensors.ts";
import { describeSource, listInstalledModels, removeInstalledModel } from "../hub/installed.ts";
import { checkModelName, type PullProgress, pullModel } from "../hub/pull.ts";

interface PlaceOptions {
  modelsDir?: string;
  dataDir?: string;
  config?: string;
}

function placeConfig(o: PlaceOptions): Config {
  return loadConfig({
    file: o.config,
    flags: { ...(o.dataDir ? { dataDir: o.dataDir } : {}), models: o.modelsDir ? { dir: o.modelsDir } : {} },
  });
}

function placeOptions(c: Command): Command {
  return c
    .option("--models-dir <dir>", "models directory (default <data-dir>/models)")
    .option("--data-dir <dir>", "data directory")
    .option("--config <file>", "JSON config file");
}

/** 1.5 GiB, 320 MiB, 12 KiB, 800 B. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/**
 * Progress for a pull on stderr: a bar for the file being downloaded and one for the total (on a terminal), or one
 * line per finished file otherwise.
 */
function pullProgressView(): { update: (p: PullProgress) => void; stop: () => void } {
  const tty = process.stderr.isTTY;
  const multi = tty
    ? new MultiBar({ format: "{bar} {percentage}% | {done}/{size} | {label}", hideCursor: true, clearOnComplete: false }, Presets.shades_classic)
    : undefined;
  let total: SingleBar | undefined;
  let file: SingleBar | undefined;
  let current: string | undefined;
  const finished = new Set<string>();
  return {
    update(p) {
      if (p.phase !== "downloading") {
        if (!tty && p.phase !== "done") console.error(`${p.phase} ${p.repo}${p.commit ? `@${p.commit.slice(0, 12)}` : ""}`);
        return;
      }
      if (multi && !total && p.totalBytes > 0) {
        total = multi.create(p.totalBytes, 0, { label: `total (${p.files.length} files)`, done: formatBytes(0), size: formatBytes(p.totalBytes) });
      }
      total?.update(p.doneBytes, { done: formatBytes(p.doneBytes) });
      if (p.current !== current) {
        file?.stop();
        if (multi && file) multi.remove(file);
        current = p.current;
        const f = p.files.find((x) => x.path === current);
        file = multi && f ? multi.create(Math.max(f.size, 1), 0, { label: f.path, done: formatBytes(0), size: formatBytes(f.size) }) : undefined;
      }
      for (const f of p.files) {
        if (f.path === current) file?.update(f.done, { done: formatBytes(f.done) });
        if (!tty && f.done === f.size && !finished.has(f.path)) {
          finished.add(f.path);
          console.error(`${f.path} ${formatBytes(f.size)} (${formatBytes(p.doneBytes)} of ${formatBytes(p.totalBytes)})`);
        }
      }
    },
    stop: () => multi?.stop(),
  };
}

function parseVariant(v: string): WeightVariant {
  if (v !== "fp16" && v !== "bf16") throw new InvalidArgumentError("the variants are fp16 and bf16");
  return v;
}

/** `easel convert FILE [--config DIR] (-o OUT | --name NAME)`: a single-file checkpoint to a diffusers folder. */
export function convertCommand(): Command {
  return (
    new Command("convert")
      .option("--models-dir <dir>", "models directory (default <data-dir>/models)")
      .option("--data-dir <dir>", "data directory")
      .description(
        "convert a single-file checkpoint (.safetensors, SD1.x / SD2.x / SDXL base / SD3 / SD3.5) to a diffusers folder; configs, scheduler and tokenizers come from --config, else the first model of the same family in the models directory whose configs fit the file, else Easel's bundled standard configs (SD1.5, SD2.1 768-v, SDXL base 1.0; none for SD3)",
      )
      .argument("<file>", "the .safetensors file")
      .option("--config <dir>", "a diffusers folder of the same family: configs, scheduler and tokenizer files (weights only for components the file lacks, e.g. SD3's T5)")
      .option("-o, --out <dir>", "output folder (default: <models-dir>/<name>, so the server serves it)")
      .option("--name <name>", "model name in the models directory (default: the file's name)")
  ).action((file: string, o: Omit<PlaceOptions, "config"> & { config?: string; out?: string; name?: string }) => {
    // --config names the diffusers folder here; the JSON config file of other commands is EASEL_* / defaults only.
    const modelsDir = configPaths(placeConfig({ modelsDir: o.modelsDir, dataDir: o.dataDir })).modelsDir;
    const out = o.out ?? join(modelsDir, checkModelName(o.name ?? basename(file).replace(/\.safetensors$/, "")));
    // Without --config, a model of the same family and shape already in the models directory lends its configs, else the bundled ones.
    const r = convertSingleFile(file, { configDir: o.config, searchDir: modelsDir, out });
    const from = r.configDir ?? `Easel's bundled copy of ${r.bundled}`;
    console.log(`${r.out}\t${r.family}\t${r.tensors} tensors, configs from ${from}${r.fromConfig.length ? `; weights from it: ${r.fromConfig.join(", ")}` : ""}`);
  });
}

/** `easel pull <owner>/<repo>[@revision]` (also `easel models pull`). */
export function pullCommand(name = "pull"): Command {
  return placeOptions(
    new Command(name)
      .description("download a diffusers pipeline from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN) into the models directory")
      .argument("<repo>", "owner/name or owner/name@revision (branch, tag or commit)")
      .addOption(new Option("--variant <variant>", "weight precision to download where a component has it (fp16, bf16)").argParser(parseVariant))
      .option("--name <name>", "folder name in the models directory (default: the repository's name)"),
  ).action(async (repo: string, o: PlaceOptions & { variant?: WeightVariant; name?: string }) => {
    const config = placeConfig(o);
    const view = pullProgressView();
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.once("SIGINT", onSigint);
    try {
      const r = await pullModel({
        ref: repo,
        variant: o.variant,
        name: o.name,
        modelsDir: configPaths(config).modelsDir,
        endpoint: config.hub.endpoint,
        token: config.hub.token,
        onProgress: view.update,
        signal: ac.signal,
      });
      view.stop();
      console.log(`${r.name}\t${r.dir}\t${r.files} files, ${formatBytes(r.bytes)}\tcommit ${r.commit}`);
    } finally {
      view.stop();
      process.off("SIGINT", onSigint);
    }
  });
}

export function modelsCommand(): Command {
  const models = new Command("models").description("list, pull and remove installed models");
  placeOptions(models.command("list").description("list the models found in the models directory and the config (size on disk, source)"))
    .option("--json", "print JSON")
    .action(async (o: PlaceOptions & { json?: boolean }) => {
      const config = placeConfig(o);
      const paths = configPaths(config);
      const installed = new Map(listInstalledModels(paths.modelsDir).map((m) => [m.dir, m]));
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
        const folderOf = new Map(registry.models.flatMap((m) => (m.backend === "local" && installed.has(m.dir) ? [[m.info.id, installed.get(m.dir)!]] : [])));
        const list = registry.list().map((m) => {
          const folder = folderOf.get(m.id);
          return { ...m, ...(folder ? { bytes: folder.bytes, source: folder.source ?? null } : {}) };
        });
        if (o.json) console.log(JSON.stringify(list));
        else if (list.length === 0) console.log(`no models in ${paths.modelsDir}`);
        else {
          for (const m of list) {
            const d = m.defaults;
            const where = m.backend === "local" ? m.family : `${m.family} via ${m.backend}`;
            const folder = folderOf.get(m.id);
            const converted = registry.models.find((r) => r.info.id === m.id && r.backend === "local" && r.dir.includes(`/${CONVERTED_DIR}/`));
            const disk = folder
              ? `\t${formatBytes(folder.bytes)}, ${describeSource(folder.source)}`
              : converted
                ? `\tsingle file ${m.id}.safetensors (converted copy)`
                : m.id === BUILTIN_MODEL.id
                  ? "\tbuilt in"
                  : m.backend === "local"
                    ? "\tmodels.entries"
                    : "";
            console.log(`${m.id}\t${where}\t${d.width}x${d.height}, ${d.steps} steps, guidance ${d.guidanceScale}${disk}\taliases: ${m.aliases.join(", ")}`);
          }
        }
      } finally {
        await upstreams.close();
        await engine.close();
      }
    });
  placeOptions(models.command("rm").description("delete a model folder (and any pull of it left unfinished) from the models directory"))
    .argument("<name>", "the model's folder name")
    .action((name: string, o: PlaceOptions) => {
      const r = removeInstalledModel(configPaths(placeConfig(o)).modelsDir, name);
      console.log(`removed ${r.dir} (${formatBytes(r.bytes)})`);
    });
  models.addCommand(pullCommand());
  return models;
}

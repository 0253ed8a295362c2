/**
 * `easel keys create|list|show|revoke|add-credits|webhook`: API key management on the store `easel serve` uses (the
 * data directory's SQLite database, or PostgreSQL when storage.databaseUrl is set), so both see the same keys and balances. Secrets are printed once, at create.
 */
import { Command, InvalidArgumentError } from "commander";
import { configPaths, loadConfig } from "../config/index.ts";
import { invalidInput, toEaselError } from "../core/errors.ts";
import { createKeyAdmin, type KeyInfo } from "../jobs/api-keys.ts";
import { openPostgresStore } from "../storage/postgres.ts";
import { openSqliteStore } from "../storage/sqlite.ts";

export interface KeysIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env?: Record<string, string | undefined>;
}

const defaultIo: KeysIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

interface CommonOpts {
  dataDir?: string;
  config?: string;
  json?: boolean;
}

function parseNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`not a number: ${v}`);
  return n;
}

function parseInteger(v: string): number {
  const n = parseNumber(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a positive integer: ${v}`);
  return n;
}

/** "60", "60/min" or "60/m" requests per minute. */
function parseRate(v: string): number {
  const m = /^\s*(\d+)\s*(?:\/\s*(?:min|m|minute))?\s*$/i.exec(v);
  if (!m) throw new InvalidArgumentError(`expected requests per minute such as 60/min, got ${v}`);
  return parseInteger(m[1]);
}

function describe(k: KeyInfo): string {
  const credits = k.credits === null ? "unlimited" : String(k.credits);
  const rate = k.rateLimitPerMinute === null ? "none" : `${k.rateLimitPerMinute}/min`;
  const conc = k.maxConcurrent === null ? "none" : String(k.maxConcurrent);
  return `${k.id}  ${k.status.padEnd(7)}  ${k.prefix}…  credits=${credits}  rate=${rate}  concurrent=${conc}  name=${JSON.stringify(k.name)}  created=${k.createdAt}${k.revokedAt ? `  revoked=${k.revokedAt}` : ""}`;
}

export function keysCommand(io: KeysIo = defaultIo): Command {
  const withAdmin = async (opts: CommonOpts, fn: (admin: ReturnType<typeof createKeyAdmin>) => Promise<void>) => {
    try {
      const config = loadConfig({ file: opts.config, env: io.env, flags: opts.dataDir ? { dataDir: opts.dataDir } : {} });
      // The store the servers use: PostgreSQL when storage.databaseUrl (EASEL_DATABASE_URL) is set, so a key made
      // here is known to every node.
      const store = config.storage.databaseUrl
        ? await openPostgresStore({ connectionString: config.storage.databaseUrl })
        : await openSqliteStore(configPaths(config).dbFile);
      try {
        await fn(createKeyAdmin({ store }));
      } finally {
        await store.close();
      }
    } catch (e) {
      const err = toEaselError(e);
      const message = err.code === "E_INTERNAL" && e instanceof Error ? e.message : err.message;
      if (opts.json) io.out(`${JSON.stringify({ error: { code: err.code, message } })}\n`);
      io.err(`error: ${message}\n`);
      process.exitCode = 1;
    }
  };
  const common = (c: Command) =>
    c
      .option("--data-dir <dir>", "data directory (default: $EASEL_DATA_DIR or ~/.easel)")
      .option("--config <file>", "JSON config file")
      .option("--json", "print JSON for scripts");
  const optsOf = (c: Command) => c.optsWithGlobals() as CommonOpts & Record<string, unknown>;
  const print = (opts: CommonOpts, value: unknown, text: string) => io.out(opts.json ? `${JSON.stringify(value)}\n` : `${text}\n`);

  const keys = new Command("keys").description("manage API keys, credits and limits");

  common(keys.command("create").description("create a key and print its secret once"))
    .requiredOption("--name <name>", "who the key is for")
    .option("--credits <n>", "opening balance in credits (default: unlimited)", parseNumber)
    .option("--rate-limit <R/min>", "requests per minute", parseRate)
    .option("--max-concurrent <k>", "jobs running at once", parseInteger)
    .action(async (_o, cmd: Command) => {
      const o = optsOf(cmd);
      await withAdmin(o, async (admin) => {
        const { key, info } = await admin.create({
          name: o.name as string,
          credits: (o.credits as number | undefined) ?? null,
          rateLimitPerMinute: (o.rateLimit as number | undefined) ?? null,
          maxConcurrent: (o.maxConcurrent as number | undefined) ?? null,
        });
        print(o, { key, ...info }, `${describe(info)}\n\n${key}\n\nStore this key now: it is not shown again.`);
      });
    });

  common(keys.command("list").description("list keys (secrets are never shown)")).action(async (_o, cmd: Command) => {
    const o = optsOf(cmd);
    await withAdmin(o, async (admin) => {
      const all = await admin.list();
      print(o, all, all.length === 0 ? "no keys" : all.map(describe).join("\n"));
    });
  });

  common(keys.command("show").argument("<id>").description("show one key")).action(async (id: string, _o, cmd: Command) => {
    const o = optsOf(cmd);
    await withAdmin(o, async (admin) => {
      const k = await admin.show(id);
      print(o, k, describe(k));
    });
  });

  common(keys.command("revoke").argument("<id>").description("revoke a key (permanent)")).action(async (id: string, _o, cmd: Command) => {
    const o = optsOf(cmd);
    await withAdmin(o, async (admin) => {
      const k = await admin.revoke(id);
      print(o, k, describe(k));
    });
  });

  common(keys.command("add-credits").argument("<id>").argument("<credits>", "credits to add (negative to remove)", parseNumber))
    .description("add credits to a metered key")
    .option("--note <text>", "reason, kept in the ledger")
    .action(async (id: string, credits: number, _o, cmd: Command) => {
      const o = optsOf(cmd);
      await withAdmin(o, async (admin) => {
        const k = await admin.addCredits(id, credits, o.note as string | undefined);
        print(o, k, describe(k));
      });
    });

  common(keys.command("webhook").argument("<id>"))
    .description("send the key's job-completion events to a URL (signed; the secret is printed once)")
    .option("--url <url>", "http(s) URL that receives a POST per settled job")
    .option("--remove", "stop sending events")
    .action(async (id: string, _o, cmd: Command) => {
      const o = optsOf(cmd);
      await withAdmin(o, async (admin) => {
        if ((o.url === undefined) === (o.remove === undefined)) throw invalidInput("url", "give either --url <url> or --remove");
        const { secret, info } = await admin.setWebhook(id, o.remove ? null : (o.url as string));
        const text = secret
          ? `${describe(info)}\nwebhook=${info.webhookUrl}\n\n${secret}\n\nThis signing secret is not shown again (verify webhook-signature with it).`
          : `${describe(info)}\nwebhook removed`;
        print(o, { ...info, ...(secret ? { webhookSecret: secret } : {}) }, text);
      });
    });

  return keys;
}

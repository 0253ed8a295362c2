/**
 * API keys: `esk_` + 32 random bytes in base64url (256 bits). Only the sha256 of a key is stored; a fast hash
 * is enough for secrets this long (no dictionary to try), and the comparison is constant-time. KeyAdmin is the
 * management surface shared by `easel keys` and the admin HTTP API.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { EaselError, invalidInput } from "../core/errors.ts";
import type { Principal } from "../core/image-service.ts";
import type { KeyRecord, MetadataStore } from "../storage/metadata-store.ts";
import { toCredits, toMillicredits } from "./pricing.ts";

export const KEY_PREFIX = "esk_";
const SHOWN_PREFIX_LENGTH = 12;

export type RandomBytes = (n: number) => Uint8Array;
export const defaultRandom: RandomBytes = (n) => randomBytes(n);

export function hashKey(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

export interface KeyInfo {
  id: string;
  name: string;
  prefix: string;
  status: "active" | "revoked";
  createdAt: string;
  revokedAt: string | null;
  /** Balance in credits; null = unlimited. */
  credits: number | null;
  rateLimitPerMinute: number | null;
  maxConcurrent: number | null;
  /** Where the key's job-completion events go; null: none. */
  webhookUrl: string | null;
}

export interface CreateKeyInput {
  name: string;
  /** Opening balance; omitted or null = unlimited credits. */
  credits?: number | null;
  rateLimitPerMinute?: number | null;
  maxConcurrent?: number | null;
}

export interface KeyAdmin {
  /** The secret is in the answer once and never again. */
  create(input: CreateKeyInput): Promise<{ key: string; info: KeyInfo }>;
  list(): Promise<KeyInfo[]>;
  show(id: string): Promise<KeyInfo>;
  revoke(id: string): Promise<KeyInfo>;
  /** Adds (or, negative, removes) credits on a metered key. */
  addCredits(id: string, credits: number, note?: string): Promise<KeyInfo>;
  /**
   * Sends the key's job-completion events to `url` (http or https), signed with a new secret that is in the answer
   * once and never again; null removes the webhook.
   */
  setWebhook(id: string, url: string | null): Promise<{ secret: string | null; info: KeyInfo }>;
}

/** A webhook URL: absolute http(s), no credentials in it (they would be logged and stored in plain text). */
export function checkWebhookUrl(url: unknown): string {
  let u: URL | undefined;
  try {
    u = typeof url === "string" && url.length <= 2048 ? new URL(url) : undefined;
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) {
    throw invalidInput("url", `url must be an absolute http:// or https:// URL of at most 2048 characters, got ${JSON.stringify(url)}`);
  }
  if (u.username || u.password) throw invalidInput("url", "url must not carry a user name or password; the events are signed instead");
  return u.toString();
}

function positiveIntOrNull(v: number | null | undefined, param: string): number | null {
  if (v === undefined || v === null) return null;
  if (!(Number.isInteger(v) && v >= 1 && v <= 1_000_000)) {
    throw invalidInput(param, `${param} must be an integer from 1 to 1000000, got ${v}`, { min: 1, max: 1_000_000 });
  }
  return v;
}

const MAX_CREDITS = 1e12;

export function createKeyAdmin(deps: { store: MetadataStore; clock?: () => number; random?: RandomBytes }): KeyAdmin {
  const { store } = deps;
  const now = deps.clock ?? Date.now;
  const random = deps.random ?? defaultRandom;

  async function info(k: KeyRecord): Promise<KeyInfo> {
    const bal = await store.balance(k.id);
    return {
      id: k.id,
      name: k.name,
      prefix: k.prefix,
      status: k.revokedAt === null ? "active" : "revoked",
      createdAt: new Date(k.createdAt).toISOString(),
      revokedAt: k.revokedAt === null ? null : new Date(k.revokedAt).toISOString(),
      credits: bal === null ? null : toCredits(bal),
      rateLimitPerMinute: k.rateLimitPerMinute,
      maxConcurrent: k.maxConcurrent,
      webhookUrl: k.webhookUrl,
    };
  }

  async function mustGet(id: string): Promise<KeyRecord> {
    const k = typeof id === "string" ? await store.getKey(id) : undefined;
    if (!k) throw new EaselError("E_NOT_FOUND", `no API key with id ${JSON.stringify(id)}`, { param: "id" });
    return k;
  }

  return {
    async create(input) {
      const name = typeof input.name === "string" ? input.name.trim() : "";
      if (name.length < 1 || name.length > 100) throw invalidInput("name", "name must be 1 to 100 characters");
      const credits = input.credits ?? null;
      if (credits !== null && !(Number.isFinite(credits) && credits >= 0 && credits <= MAX_CREDITS)) {
        throw invalidInput("credits", `credits must be a number from 0 to ${MAX_CREDITS}, got ${credits}`, {
          min: 0,
          max: MAX_CREDITS,
        });
      }
      const secret = KEY_PREFIX + Buffer.from(random(32)).toString("base64url");
      const record = await store.createKey({
        id: `key_${Buffer.from(random(8)).toString("hex")}`,
        name,
        prefix: secret.slice(0, SHOWN_PREFIX_LENGTH),
        hash: hashKey(secret),
        createdAt: now(),
        metered: credits !== null,
        initialCredits: credits === null ? 0 : toMillicredits(credits),
        rateLimitPerMinute: positiveIntOrNull(input.rateLimitPerMinute, "rateLimitPerMinute"),
        maxConcurrent: positiveIntOrNull(input.maxConcurrent, "maxConcurrent"),
      });
      return { key: secret, info: await info(record) };
    },
    async list() {
      return Promise.all((await store.listKeys()).map(info));
    },
    async show(id) {
      return info(await mustGet(id));
    },
    async revoke(id) {
      await mustGet(id);
      return info((await store.revokeKey(id, now()))!);
    },
    async addCredits(id, credits, note) {
      if (!(Number.isFinite(credits) && credits !== 0 && Math.abs(credits) <= MAX_CREDITS)) {
        throw invalidInput("credits", `credits must be a non-zero number within ±${MAX_CREDITS}, got ${credits}`);
      }
      await mustGet(id);
      await store.addCredits(id, toMillicredits(credits), note ?? null, now());
      return info(await mustGet(id));
    },
    async setWebhook(id, url) {
      await mustGet(id);
      if (url === null) return { secret: null, info: await info((await store.setKeyWebhook(id, null))!) };
      const checked = checkWebhookUrl(url);
      const secret = `whsec_${Buffer.from(random(32)).toString("base64")}`;
      const k = await store.setKeyWebhook(id, { url: checked, secret });
      return { secret, info: await info(k!) };
    },
  };
}

/**
 * Resolves a presented key to its principal. Open mode (decided at start-up) applies only while the store has
 * no keys at all, revoked ones included, so revoking the last key never opens the server.
 */
export async function authenticateKey(
  store: MetadataStore,
  apiKey: string | undefined,
  openMode: boolean,
): Promise<Principal> {
  if (openMode && (await store.countKeys()) === 0) return { keyId: null, name: "local", remainingCredits: null };
  if (apiKey === undefined || apiKey === "") throw new EaselError("E_AUTH_MISSING", "An API key is required.");
  const presented = Buffer.from(hashKey(apiKey), "hex");
  const found = await store.findKeyByHash(presented.toString("hex"));
  if (!found || !timingSafeEqual(presented, Buffer.from(found.hash, "hex"))) {
    throw new EaselError("E_AUTH_INVALID", "Invalid API key.");
  }
  if (found.key.revokedAt !== null) throw new EaselError("E_AUTH_INVALID", "This API key has been revoked.");
  const bal = await store.balance(found.key.id);
  return { keyId: found.key.id, name: found.key.name, remainingCredits: bal === null ? null : toCredits(bal) };
}

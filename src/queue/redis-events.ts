/**
 * A job's events between processes over Redis pub/sub (DESIGN.md §4, scaled out): the worker that runs a job publishes
 * its progress and previews on the job's channel, and the API node that holds its caller subscribes to it.
 */
import { Redis } from "ioredis";
import { EaselError } from "../core/errors.ts";
import type { JobEventBus } from "./queue.ts";

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(invalid URL)";
  }
}

/** JSON with byte arrays (preview images) as {"$bytes": base64}. */
function encodeMessage(m: unknown): string {
  return JSON.stringify(m, (_k, v) => (v instanceof Uint8Array ? { $bytes: Buffer.from(v).toString("base64") } : v));
}

function decodeMessage(s: string): unknown {
  return JSON.parse(s, (_k, v) =>
    v !== null && typeof v === "object" && typeof (v as { $bytes?: unknown }).$bytes === "string" && Object.keys(v).length === 1
      ? new Uint8Array(Buffer.from((v as { $bytes: string }).$bytes, "base64"))
      : v,
  );
}

/** A job's events over Redis pub/sub (one channel per job), so any API node streams a job that runs anywhere. */
export async function openRedisEventBus(opts: { redisUrl: string; name: string; prefix?: string }): Promise<JobEventBus> {
  const channel = (jobId: string) => `${opts.prefix ?? "easel"}-events:${opts.name}:${jobId}`;
  const pub = new Redis(opts.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  const sub = new Redis(opts.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  try {
    await pub.connect();
    await sub.connect();
  } catch (e) {
    pub.disconnect();
    sub.disconnect();
    throw new EaselError("E_INTERNAL", `cannot reach Redis at ${redactUrl(opts.redisUrl)}: ${(e as Error).message}`, { cause: e });
  }
  const listeners = new Map<string, Set<(m: unknown) => void>>();
  sub.on("message", (ch: string, text: string) => {
    const set = listeners.get(ch);
    if (!set) return;
    const m = decodeMessage(text);
    for (const l of set) l(m);
  });
  return {
    async publish(jobId, message) {
      await pub.publish(channel(jobId), encodeMessage(message));
    },
    async subscribe(jobId, listener) {
      const ch = channel(jobId);
      let set = listeners.get(ch);
      if (!set) {
        set = new Set();
        listeners.set(ch, set);
        await sub.subscribe(ch);
      }
      set.add(listener);
      return async () => {
        set.delete(listener);
        if (set.size === 0 && listeners.get(ch) === set) {
          listeners.delete(ch);
          await sub.unsubscribe(ch).catch(() => undefined);
        }
      };
    },
    async close() {
      listeners.clear();
      await sub.quit().catch(() => sub.disconnect());
      await pub.quit().catch(() => pub.disconnect());
    },
  };
}

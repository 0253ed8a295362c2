/** The Redis the tests use (EASEL_TEST_REDIS_URL, default the local server), and why it cannot be used, if so. */
import { Redis } from "ioredis";

export const TEST_REDIS_URL = process.env.EASEL_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";

/** undefined when Redis answers a PING; otherwise the reason, for a visible skip. */
export async function redisUnreachable(url = TEST_REDIS_URL): Promise<string | undefined> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
  try {
    await r.connect();
    await r.ping();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    r.disconnect();
  }
}

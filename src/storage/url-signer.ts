/**
 * Signed, expiring image URL tokens: `<imageId>.<expiresAtSeconds>.<mac>`, mac = HMAC-SHA256(secret,
 * "<imageId>.<expiresAtSeconds>") in base64url. The secret is 32 random bytes kept in the data directory, so
 * URLs survive restarts and every process sharing the directory accepts them.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const URL_SECRET_FILE = "url-signing.key";

/** Reads `<dir>/url-signing.key`, creating it (mode 0600) on first use. */
export function loadOrCreateUrlSecret(dir: string): Buffer {
  const file = join(dir, URL_SECRET_FILE);
  try {
    const s = readFileSync(file);
    if (s.length >= 32) return s;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32);
  try {
    // "wx": when two processes start together, the first writer wins and the other reads its secret.
    writeFileSync(file, secret, { flag: "wx", mode: 0o600 });
    chmodSync(file, 0o600);
    return secret;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return readFileSync(file);
    throw e;
  }
}

export interface UrlSigner {
  /** A token for `id` valid for `ttlSeconds` from now. */
  sign(id: string, ttlSeconds: number): { token: string; expiresAt: number };
  /**
   * The image id and when the token expires (ms since the epoch), or undefined when the token is malformed,
   * forged, expired or not in its one canonical spelling.
   */
  verify(token: string): { id: string; expiresAt: number } | undefined;
}

export function createUrlSigner(secret: Uint8Array, now: () => number = Date.now): UrlSigner {
  const mac = (payload: string) => createHmac("sha256", secret).update(payload).digest();
  return {
    sign(id, ttlSeconds) {
      const exp = Math.floor(now() / 1000) + Math.ceil(ttlSeconds);
      const payload = `${id}.${exp}`;
      return { token: `${payload}.${mac(payload).toString("base64url")}`, expiresAt: exp * 1000 };
    },
    verify(token) {
      const m = /^([A-Za-z0-9_-]{1,200})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
      if (!m) return undefined;
      const expected = mac(`${m[1]}.${m[2]}`);
      const given = Buffer.from(m[3], "base64url");
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      // 43 characters carry 258 bits for 256: the decoder ignores the last character's low 2 bits, so four
      // spellings decode to the same MAC. Only the one the signer writes is a valid URL.
      if (given.toString("base64url") !== m[3]) return undefined;
      const expiresAt = Number(m[2]) * 1000;
      if (expiresAt <= now()) return undefined;
      return { id: m[1], expiresAt };
    },
  };
}

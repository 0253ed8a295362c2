/**
 * Signed, expiring image URL tokens: `<imageId>.<expiresAtSeconds>.<mac>`, mac = HMAC-SHA256(secret,
 * "<imageId>.<expiresAtSeconds>") in base64url, then the image's file extension (`.png`, `.jpg`, `.webp`): some
 * clients take the file type from the URL's path. Tokens without an extension (URLs handed out before) still verify. The secret is 32 random bytes kept in the data directory, so
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

/** The extension a URL of an image in `format` ends with. */
export const FORMAT_EXTENSION: Readonly<Record<string, string>> = { png: "png", jpeg: "jpg", webp: "webp" };

/** Extensions a token may end with, and the image format each stands for (`.jpeg` is read as well as `.jpg`). */
const EXTENSION_FORMAT: Readonly<Record<string, string>> = { png: "png", jpg: "jpeg", jpeg: "jpeg", webp: "webp" };

export interface UrlSigner {
  /** A token for `id` valid for `ttlSeconds` from now, ending in the extension of `format` when given. */
  sign(id: string, ttlSeconds: number, format?: string): { token: string; expiresAt: number };
  /**
   * The image id, when the token expires (ms since the epoch) and the format its extension names (none for a token
   * without one), or undefined when the token is malformed, forged, expired or not in its one canonical spelling.
   */
  verify(token: string): { id: string; expiresAt: number; format?: string } | undefined;
}

export function createUrlSigner(secret: Uint8Array, now: () => number = Date.now): UrlSigner {
  const mac = (payload: string) => createHmac("sha256", secret).update(payload).digest();
  return {
    sign(id, ttlSeconds, format) {
      const exp = Math.floor(now() / 1000) + Math.ceil(ttlSeconds);
      const payload = `${id}.${exp}`;
      const ext = format === undefined ? undefined : FORMAT_EXTENSION[format];
      if (format !== undefined && ext === undefined) throw new Error(`no file extension for image format ${JSON.stringify(format)}`);
      return { token: `${payload}.${mac(payload).toString("base64url")}${ext ? `.${ext}` : ""}`, expiresAt: exp * 1000 };
    },
    verify(token) {
      const m = /^([A-Za-z0-9_-]{1,200})\.(\d{1,12})\.([A-Za-z0-9_-]{43})(?:\.(png|jpg|jpeg|webp))?$/.exec(token);
      if (!m) return undefined;
      const expected = mac(`${m[1]}.${m[2]}`);
      const given = Buffer.from(m[3], "base64url");
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      // 43 characters carry 258 bits for 256: the decoder ignores the last character's low 2 bits, so four
      // spellings decode to the same MAC. Only the one the signer writes is a valid URL.
      if (given.toString("base64url") !== m[3]) return undefined;
      const expiresAt = Number(m[2]) * 1000;
      if (expiresAt <= now()) return undefined;
      return m[4] === undefined ? { id: m[1], expiresAt } : { id: m[1], expiresAt, format: EXTENSION_FORMAT[m[4]] };
    },
  };
}

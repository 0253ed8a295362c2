/**
 * One verified, resumable file download from a hub resolve URL. Written here because no kept npm client resumes into
 * a file: @huggingface/hub's `downloadFile` answers a Blob and its cache writer restarts interrupted files.
 *
 * - Bytes land in `<dest>.incomplete`; a later attempt (same run after a dropped connection, or a later `easel pull`)
 *   asks for the rest with `Range: bytes=<have>-` and appends on 206; a 200 means the server ignored the range,
 *   so the file starts over.
 * - The content is checked before it counts: LFS files against the tree's `lfs.oid` (sha256, which the hub also
 *   sends as `X-Linked-Etag`), files kept in git against their blob id (sha1 of "blob <size>\0" + content, the
 *   `ETag`); the size against the tree's. Only then is `.incomplete` renamed to `dest`.
 * - Redirects are followed by fetch; a redirect to another origin (the hub's CDN) drops the Authorization header,
 *   as the Fetch standard requires, so the token never reaches the CDN.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname } from "node:path";
import { EaselError } from "../core/errors.ts";
import { type HubOptions, hubRefusal } from "./hub-client.ts";
import type { HubFile } from "./select-files.ts";

export interface DownloadOptions extends HubOptions {
  repo: string;
  /** The commit the URL names; a different `X-Repo-Commit` in the answer is refused. */
  commit: string;
  /** Bytes of this file now on disk (resumed bytes first, then each chunk): `done` of `file.size`. */
  onBytes?: (done: number) => void;
  signal?: AbortSignal;
  /** Attempts per file after a dropped connection (each resumes where the last stopped). Default 4. */
  attempts?: number;
}

const expectedDigest = (f: HubFile) => (f.lfs ? { algo: "sha256", hex: f.lfs.oid } : f.oid ? { algo: "sha1", hex: f.oid } : undefined);
const expectedSize = (f: HubFile) => f.lfs?.size ?? f.size;
const unquote = (etag: string | null) => etag?.replace(/^W\//, "").replace(/^"|"$/g, "") ?? null;

function newHash(f: HubFile): Hash | undefined {
  const d = expectedDigest(f);
  if (!d) return undefined;
  const h = createHash(d.algo);
  // A git blob id hashes the object header before the content.
  if (d.algo === "sha1") h.update(`blob ${expectedSize(f)}\0`);
  return h;
}

async function hashExisting(file: string, h: Hash | undefined): Promise<void> {
  if (!h) return;
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
}

/** Thrown for a dropped connection or a short body: worth another attempt that resumes. */
class Interrupted extends Error {}

/** Downloads `file` from `url` to `dest` (verified, atomic); returns at once if `dest` already exists. */
export async function downloadVerified(file: HubFile, url: string, dest: string, opts: DownloadOptions): Promise<void> {
  if (existsSync(dest)) {
    opts.onBytes?.(expectedSize(file));
    return;
  }
  mkdirSync(dirname(dest), { recursive: true });
  const partial = `${dest}.incomplete`;
  const attempts = opts.attempts ?? 4;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    opts.signal?.throwIfAborted();
    try {
      await attemptDownload(file, url, partial, opts);
      verify(file, partial, await digestOf(file, partial));
      renameSync(partial, dest);
      return;
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      lastError = e;
    }
  }
  throw new EaselError(
    "E_UPSTREAM_FAILED",
    `${opts.repo}: ${file.path}: download interrupted ${attempts} times (${(lastError as Error).message}); run the same pull again to resume`,
    { details: { repo: opts.repo, path: file.path } },
  );
}

async function digestOf(file: HubFile, partial: string): Promise<string | undefined> {
  const h = newHash(file);
  await hashExisting(partial, h);
  return h?.digest("hex");
}

function verify(file: HubFile, partial: string, digest: string | undefined): void {
  const size = statSync(partial).size;
  const want = expectedDigest(file);
  const fail = (what: string) => {
    rmSync(partial, { force: true });
    return new EaselError("E_UPSTREAM_FAILED", `${file.path}: ${what}; the partial file was removed, pull again to download it anew`, {
      details: { path: file.path },
    });
  };
  if (size !== expectedSize(file)) throw fail(`got ${size} bytes, the hub lists ${expectedSize(file)}`);
  if (want && digest !== want.hex) throw fail(`${want.algo} ${digest} does not match the hub's ${want.hex}`);
}

async function attemptDownload(file: HubFile, url: string, partial: string, opts: DownloadOptions): Promise<void> {
  const size = expectedSize(file);
  let have = existsSync(partial) ? statSync(partial).size : 0;
  if (have > size) {
    rmSync(partial);
    have = 0;
  }
  if (have === size && size > 0) {
    opts.onBytes?.(have);
    return;
  }
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (have > 0) headers.range = `bytes=${have}-`;
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, { headers, redirect: "follow", signal: opts.signal });
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw new Interrupted(`request failed: ${(e as Error).message}`);
  }
  if (res.status === 416) {
    // The partial file is not a prefix the server can continue: start over.
    await res.body?.cancel();
    rmSync(partial, { force: true });
    throw new Interrupted("range not satisfiable");
  }
  if (!res.ok) {
    await res.body?.cancel();
    if (res.status >= 500) throw new Interrupted(`HTTP ${res.status}`);
    throw hubRefusal(res.status, res.headers.get("x-error-code"), opts.repo, file.path, opts);
  }
  const commit = res.headers.get("x-repo-commit");
  if (commit && commit !== opts.commit) {
    await res.body?.cancel();
    throw new EaselError("E_UPSTREAM_FAILED", `${file.path}: the hub served commit ${commit}, not the ${opts.commit} being pulled`);
  }
  const linked = unquote(res.headers.get("x-linked-etag"));
  if (file.lfs && linked && /^[0-9a-f]{64}$/.test(linked) && linked !== file.lfs.oid) {
    await res.body?.cancel();
    throw new EaselError("E_UPSTREAM_FAILED", `${file.path}: the hub's X-Linked-Etag ${linked} is not the tree's sha256 ${file.lfs.oid}`);
  }
  let append = false;
  if (res.status === 206) {
    const range = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
    if (!range || Number(range[1]) !== have) {
      await res.body?.cancel();
      rmSync(partial, { force: true });
      throw new Interrupted(`asked for bytes from ${have}, got Content-Range ${res.headers.get("content-range")}`);
    }
    append = true;
  }
  if (!append) have = 0;
  opts.onBytes?.(have);
  const fh = await open(partial, append ? "a" : "w");
  try {
    if (!res.body) throw new Interrupted("empty body");
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        await fh.write(chunk);
        have += chunk.byteLength;
        opts.onBytes?.(have);
      }
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      throw new Interrupted(`connection dropped at byte ${have}: ${(e as Error).message}`);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (have < size) throw new Interrupted(`body ended at byte ${have} of ${size}`);
}

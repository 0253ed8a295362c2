/**
 * A local HTTP server that speaks the part of the Hugging Face hub's API that `easel pull` follows, for offline tests:
 *   GET /api/models/{owner}/{name}/revision/{rev}            -> {id, sha, ...}; unknown rev: 404, X-Error-Code RevisionNotFound
 *   GET /api/models/{owner}/{name}/tree/{sha}?recursive=true -> [{type, oid, size, path, lfs?}], paged (Link: <...>; rel="next")
 *   GET|HEAD /{owner}/{name}/resolve/{rev}/{path}            -> X-Repo-Commit, ETag; git files answered here (Range honoured),
 *        LFS files: 302 to a second origin (the "CDN") with X-Linked-Etag (sha256) and X-Linked-Size, as the hub does
 *   CDN GET /{sha256}                                         -> the bytes, Range honoured (206 + Content-Range)
 * Unknown repositories: 401 with X-Error-Code RepoNotFound (the hub answers missing and private alike); gated ones:
 * 401 without a token, 403 with a token not in their list, X-Error-Code GatedRepo.
 * Faults for resume tests: `dropAfter` cuts the CDN connection after that many bytes (once per file).
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join, relative } from "node:path";

export interface FakeRepo {
  files: Map<string, Buffer>;
  commit: string;
  /** Tokens allowed; set: the repository is gated. */
  gatedTokens?: string[];
}

export interface LoggedRequest {
  server: "hub" | "cdn";
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export interface FakeHub {
  endpoint: string;
  repos: Map<string, FakeRepo>;
  log: LoggedRequest[];
  /** sha256 -> bytes after which the next CDN answer for that content is cut (then the entry is removed). */
  dropAfter: Map<string, number>;
  /** Tree page size (to exercise the Link header). */
  pageSize: number;
  close(): Promise<void>;
}

const isLfs = (path: string) => /\.(safetensors|bin|ckpt|onnx|msgpack)$/.test(path);
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Buffer) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

function listen(server: Server): Promise<string> {
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** Answers `body` honouring a `Range: bytes=N-[M]` header. */
function sendBytes(req: IncomingMessage, res: ServerResponse, body: Buffer, headers: Record<string, string>, dropAt?: number): void {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
  let start = 0;
  let end = body.length - 1;
  if (m) {
    start = Number(m[1]);
    if (m[2]) end = Math.min(end, Number(m[2]));
    if (start >= body.length) {
      res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
      return;
    }
  }
  const slice = body.subarray(start, end + 1);
  res.writeHead(m ? 206 : 200, {
    ...headers,
    "accept-ranges": "bytes",
    "content-length": String(slice.length),
    ...(m ? { "content-range": `bytes ${start}-${end}/${body.length}` } : {}),
  });
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  if (dropAt !== undefined && dropAt < slice.length) {
    res.write(slice.subarray(0, dropAt), () => res.destroy());
    return;
  }
  res.end(slice);
}

export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const log: LoggedRequest[] = [];
  const dropAfter = new Map<string, number>();
  const byHash = new Map<string, Buffer>();
  for (const r of Object.values(repos)) for (const b of r.files.values()) byHash.set(sha256(b), b);
  const state = { pageSize: 4 };
  const record = (server: "hub" | "cdn", req: IncomingMessage) =>
    log.push({ server, method: req.method ?? "", url: req.url ?? "", range: req.headers.range, authorization: req.headers.authorization });

  const cdn = createServer((req, res) => {
    record("cdn", req);
    const hash = (req.url ?? "").slice(1).split("?")[0];
    const body = byHash.get(hash);
    if (!body) return void res.writeHead(404).end();
    const drop = dropAfter.get(hash);
    dropAfter.delete(hash);
    sendBytes(req, res, body, { etag: `"${hash}"` }, drop);
  });
  const cdnBase = await listen(cdn);

  const hub = createServer((req, res) => {
    record("hub", req);
    const url = new URL(req.url ?? "/", "http://x");
    const json = (status: number, v: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(v));
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repoName = api?.[1] ?? resolve?.[1];
    const repo = repoName ? repos[repoName] : undefined;
    if (!repo) return json(401, { error: "Repository Not Found" }, { "x-error-code": "RepoNotFound" });
    if (repo.gatedTokens) {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
      if (!token) return json(401, { error: "Access to this model is restricted." }, { "x-error-code": "GatedRepo" });
      if (!repo.gatedTokens.includes(token)) return json(403, { error: "Access to this model is restricted." }, { "x-error-code": "GatedRepo" });
    }
    const rev = decodeURIComponent((api?.[3] ?? resolve?.[2]) as string);
    if (rev !== "main" && rev !== repo.commit) return json(404, { error: "Invalid rev id" }, { "x-error-code": "RevisionNotFound" });
    if (api?.[2] === "revision") return json(200, { id: repoName, _id: "x", sha: repo.commit, private: false, gated: repo.gatedTokens ? "manual" : false });
    if (api?.[2] === "tree") {
      const all = [...repo.files.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
      const cursor = Number(url.searchParams.get("cursor") ?? 0);
      const page = all.slice(cursor, cursor + state.pageSize).map(([path, b]) => ({
        type: "file",
        oid: gitOid(b),
        size: isLfs(path) ? 134 : b.length,
        path,
        ...(isLfs(path) ? { lfs: { oid: sha256(b), size: b.length, pointerSize: 134 } } : {}),
      }));
      const next = cursor + state.pageSize < all.length;
      const link = new URL(req.url ?? "/", `http://${req.headers.host}`);
      link.searchParams.set("cursor", String(cursor + state.pageSize));
      return json(200, page, next ? { link: `<${link.href}>; rel="next"` } : {});
    }
    const path = resolve![3].split("/").map(decodeURIComponent).join("/");
    const body = repo.files.get(path);
    if (!body) return json(404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
    if (isLfs(path)) {
      const h = sha256(body);
      res
        .writeHead(302, {
          location: `${cdnBase}/${h}`,
          "x-repo-commit": repo.commit,
          "x-linked-etag": `"${h}"`,
          "x-linked-size": String(body.length),
          etag: `"${gitOid(body)}"`,
        })
        .end();
      return;
    }
    sendBytes(req, res, body, { "x-repo-commit": repo.commit, etag: `"${gitOid(body)}"` });
  });
  const endpoint = await listen(hub);
  const fake: FakeHub = {
    endpoint,
    repos: new Map(Object.entries(repos)),
    log,
    dropAfter,
    get pageSize() {
      return state.pageSize;
    },
    set pageSize(n: number) {
      state.pageSize = n;
    },
    close: async () => {
      hub.closeAllConnections();
      cdn.closeAllConnections();
      await Promise.all([new Promise((ok) => hub.close(ok)), new Promise((ok) => cdn.close(ok))]);
    },
  };
  return fake;
}

export const hashOf = sha256;

/** Every file under `dir` (recursively) keyed by its path relative to `dir`: a FakeRepo's `files`, or a pulled folder to compare. */
export function filesUnder(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

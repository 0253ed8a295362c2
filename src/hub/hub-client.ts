/**
 * The Hugging Face hub's HTTP API as `easel pull` uses it (the protocol huggingface_hub's `snapshot_download` speaks):
 *   GET /api/models/{repo}/revision/{rev}            -> {sha, ...}: the commit a branch, tag or sha names
 *   GET /api/models/{repo}/tree/{sha}?recursive=true -> [{type, path, size, oid, lfs?: {oid, size}}], paged by `Link`
 *   GET /{repo}/resolve/{sha}/{path}                 -> the bytes, often after a redirect to a CDN (see download.ts)
 * The two API calls go through @huggingface/hub (`modelInfo`, `listFiles`); refusals are told apart by the hub's
 * `X-Error-Code` header (GatedRepo, RepoNotFound, RevisionNotFound, EntryNotFound), which that library does not
 * surface, so a fetch wrapper records it.
 */
import { HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import { EaselError } from "../core/errors.ts";
import type { HubFile } from "./select-files.ts";

export interface HubOptions {
  /** Base URL, e.g. https://huggingface.co (config hub.endpoint / HF_ENDPOINT). */
  endpoint: string;
  /** Bearer token (config hub.token / HF_TOKEN) for gated and private repositories. */
  token?: string;
  fetch?: typeof fetch;
}

const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `owner/name[@revision]` -> parts; throws E_INPUT_INVALID naming the expected form. */
export function parseRepoRef(ref: string): { repo: string; revision: string } {
  const at = ref.indexOf("@");
  const repo = at < 0 ? ref : ref.slice(0, at);
  const revision = at < 0 ? "main" : ref.slice(at + 1);
  if (!REPO_RE.test(repo) || repo.includes("..") || revision.length === 0 || /[\s]/.test(revision)) {
    throw new EaselError("E_INPUT_INVALID", `"${ref}" is not a hub repository: expected owner/name or owner/name@revision`, {
      param: "repo",
    });
  }
  return { repo, revision };
}

export const endpointOf = (opts: HubOptions) => opts.endpoint.replace(/\/+$/, "");

/**
 * The EaselError for a refused hub request: gated repositories (401/403, or X-Error-Code GatedRepo) say how to get
 * access; a missing repository, revision or file is E_NOT_FOUND; anything else is E_UPSTREAM_FAILED.
 */
export function hubRefusal(status: number, errorCode: string | null, repo: string, what: string, opts: HubOptions): EaselError {
  const page = `${endpointOf(opts)}/${repo}`;
  if (errorCode === "GatedRepo" || ((status === 401 || status === 403) && errorCode !== "RepoNotFound")) {
    const how = opts.token
      ? `the token in HF_TOKEN (hub.token) has no access yet: open ${page} while logged in as that token's account, accept the licence, and wait for access to be granted`
      : `open ${page}, log in and accept the licence, then set HF_TOKEN (or hub.token) to an access token of that account`;
    return new EaselError("E_FORBIDDEN", `${repo}: the hub refused ${what} (HTTP ${status}): the repository is gated or private; ${how}`, {
      details: { repo, status, errorCode },
    });
  }
  if (status === 404 || errorCode === "RepoNotFound" || errorCode === "RevisionNotFound" || errorCode === "EntryNotFound") {
    return new EaselError("E_NOT_FOUND", `${repo}: ${what} not found on ${endpointOf(opts)} (HTTP ${status}${errorCode ? `, ${errorCode}` : ""})`, {
      details: { repo, status, errorCode },
    });
  }
  return new EaselError("E_UPSTREAM_FAILED", `${repo}: the hub answered HTTP ${status} for ${what}`, { details: { repo, status, errorCode } });
}

/** Runs one library call with a fetch that remembers the last X-Error-Code, and maps its failures. */
async function call<T>(repo: string, what: string, opts: HubOptions, fn: (f: typeof fetch) => Promise<T>): Promise<T> {
  let errorCode: string | null = null;
  const base = opts.fetch ?? fetch;
  // The token goes in here rather than as the library's accessToken, which only accepts tokens of huggingface.co's
  // own "hf_" form; a self-hosted mirror may issue others.
  const recording: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    if (opts.token) headers.set("authorization", `Bearer ${opts.token}`);
    const res = await base(input, { ...init, headers });
    errorCode = res.headers.get("x-error-code");
    return res;
  };
  try {
    return await fn(recording);
  } catch (e) {
    if (e instanceof HubApiError) throw hubRefusal(e.statusCode, errorCode, repo, what, opts);
    throw new EaselError("E_UPSTREAM_FAILED", `${repo}: ${what} failed: ${(e as Error).message}`, { cause: e });
  }
}

/** The commit sha that `revision` (branch, tag or sha) names now. */
export async function resolveRevision(repo: string, revision: string, opts: HubOptions): Promise<string> {
  const info = await call(repo, `revision "${revision}"`, opts, (f) =>
    modelInfo({ name: repo, revision, hubUrl: endpointOf(opts), additionalFields: ["sha"], fetch: f }),
  );
  const sha = (info as { sha?: unknown }).sha;
  if (typeof sha !== "string" || !/^[0-9a-f]{40}$/.test(sha)) {
    throw new EaselError("E_UPSTREAM_FAILED", `${repo}: the hub's revision answer for "${revision}" has no commit sha`);
  }
  return sha;
}

/** Every file of the repository at `commit` (directories left out). */
export async function listRepoFiles(repo: string, commit: string, opts: HubOptions): Promise<HubFile[]> {
  return call(repo, `the file list of ${commit}`, opts, async (f) => {
    const out: HubFile[] = [];
    for await (const e of listFiles({ repo: { type: "model", name: repo }, revision: commit, recursive: true, hubUrl: endpointOf(opts), fetch: f })) {
      if (e.type !== "file") continue;
      out.push({ path: e.path, size: e.size, oid: e.oid, lfs: e.lfs ? { oid: e.lfs.oid, size: e.lfs.size } : undefined });
    }
    return out;
  });
}

/** `{endpoint}/{repo}/resolve/{commit}/{path}`, each path segment percent-encoded as huggingface_hub's hf_hub_url does. */
export function resolveUrl(repo: string, commit: string, path: string, opts: HubOptions): string {
  return `${endpointOf(opts)}/${repo}/resolve/${encodeURIComponent(commit)}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

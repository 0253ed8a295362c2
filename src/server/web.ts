/**
 * The web playground (web/): `GET /` is its page, `/web/app.js` its script, `/web/styles.css` its styles. The
 * script is web/src/main.ts bundled by esbuild in memory on first request (about 0.2 s, then cached), so the page
 * needs no build step, no network and nothing but the package. Three fixed files are served by hand rather than
 * through a static-file plugin: there is no directory to list and no path to resolve from the request.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { FastifyInstance, FastifyReply } from "fastify";
import { EaselError } from "../core/errors.ts";

/** The page's folder in the package. */
export const WEB_DIR = fileURLToPath(new URL("../../web/", import.meta.url));

/**
 * Nothing is loaded from anywhere but this server; images are this server's URLs, or data:/blob: URLs the page makes
 * from streamed frames and dropped files.
 */
const CSP = [
  "default-src 'self'",
  "img-src 'self' data: blob:",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join("; ");

/** The page's script, bundled once per process (or on every request with `fresh`, for development). */
export async function bundleWebApp(webDir = WEB_DIR): Promise<string> {
  const out = await build({
    entryPoints: [`${webDir}src/main.ts`],
    bundle: true,
    write: false,
    format: "esm",
    target: "es2022",
    platform: "browser",
    minify: false,
    sourcemap: false,
    logLevel: "silent",
  });
  return out.outputFiles[0].text;
}

export interface WebRoutesOptions {
  /** Bundle the script on every request (development), instead of once. */
  fresh?: boolean;
  webDir?: string;
}

export async function webRoutes(app: FastifyInstance, opts: WebRoutesOptions = {}): Promise<void> {
  const webDir = opts.webDir ?? WEB_DIR;
  let script: Promise<string> | undefined;
  const appScript = () => {
    if (opts.fresh || !script) {
      script = bundleWebApp(webDir);
      // A failed bundle is tried again on the next request, not cached.
      script.catch(() => {
        script = undefined;
      });
    }
    return script;
  };

  const send = (reply: FastifyReply, type: string, body: string) =>
    reply
      .header("content-type", type)
      .header("cache-control", "no-cache")
      .header("x-content-type-options", "nosniff")
      .header("content-security-policy", CSP)
      .header("referrer-policy", "no-referrer")
      .send(body);

  const file = async (name: string) => {
    try {
      return await readFile(`${webDir}${name}`, "utf8");
    } catch (err) {
      throw new EaselError("E_INTERNAL", `the web page's ${name} is missing from this installation`, { cause: err });
    }
  };

  const hide = { schema: { hide: true } };
  app.get("/", hide, async (_req, reply) => send(reply, "text/html; charset=utf-8", await file("index.html")));
  app.get("/web/styles.css", hide, async (_req, reply) => send(reply, "text/css; charset=utf-8", await file("styles.css")));
  app.get("/web/app.js", hide, async (_req, reply) => {
    let js: string;
    try {
      js = await appScript();
    } catch (err) {
      throw new EaselError("E_INTERNAL", `the web page's script did not build: ${(err as Error).message}`, { cause: err });
    }
    return send(reply, "text/javascript; charset=utf-8", js);
  });
}

/**
 * Whether the server may serve without API keys. Open mode exists for a single local user: with no keys in the
 * store and the server bound to a loopback address it is on; on any other address it needs
 * `server.allowOpen` (EASEL_ALLOW_OPEN=1), otherwise the server refuses to start.
 */
import { isIP } from "node:net";
import type { Config } from "../config/index.ts";

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (h.startsWith("::ffff:")) return h.slice(7).startsWith("127.");
  return false;
}

export function decideOpenMode(config: Config, hasKeys: boolean): { open: boolean; error?: string } {
  if (hasKeys) return { open: false };
  if (isLoopbackHost(config.server.host) || config.server.allowOpen) return { open: true };
  return {
    open: false,
    error:
      `refusing to serve without API keys on ${config.server.host}, which is not a loopback address. ` +
      "Create a key with `easel keys create --name NAME`, bind to 127.0.0.1, or set server.allowOpen " +
      "(EASEL_ALLOW_OPEN=1) to serve open on purpose.",
  };
}

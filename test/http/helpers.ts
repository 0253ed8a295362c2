/** Shared setup for the HTTP tests: a config with test defaults and an app over the fake image service. */
import assert from "node:assert/strict";
import type { FastifyInstance } from "fastify";
import { type ConfigInput, loadConfig } from "../../src/config/index.ts";
import { createApp } from "../../src/server/app.ts";
import { FakeImageService, type FakeOptions } from "./fake-image-service.ts";

export function testConfig(flags: ConfigInput = {}) {
  return loadConfig({ env: {}, flags: { dataDir: "/nonexistent/easel-test", ...flags } });
}

export async function makeApp(
  opts: FakeOptions = {},
  flags: ConfigInput = {},
): Promise<{ app: FastifyInstance; images: FakeImageService }> {
  const images = new FakeImageService(opts);
  const app = await createApp({ config: testConfig(flags), images });
  return { app, images };
}

export const AUTH = { authorization: "Bearer sk-test" };

export interface InjectArgs {
  method?: "GET" | "POST" | "PUT" | "DELETE" | "PATCH";
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
}

/**
 * Sends a request that must fail with `status` before anything is generated or charged; returns the parsed
 * body (undefined for an empty one) and the headers.
 */
export async function expectRejected(
  app: FastifyInstance,
  images: FakeImageService,
  args: InjectArgs,
  status: number,
): Promise<{ body: Record<string, unknown>; headers: Record<string, unknown> }> {
  const before = { calls: images.calls.length, charges: images.charges.length };
  const res = await app.inject({
    method: args.method ?? "POST",
    url: args.url,
    payload: args.payload as never,
    headers: args.headers,
  });
  const where = `${args.method ?? "POST"} ${args.url} ${JSON.stringify(args.payload)?.slice(0, 200)} -> ${res.body.slice(0, 300)}`;
  assert.equal(res.statusCode, status, where);
  assert.equal(images.calls.length, before.calls, `nothing generated: ${where}`);
  assert.equal(images.charges.length, before.charges, `nothing charged: ${where}`);
  return { body: res.body === "" ? {} : (JSON.parse(res.body) as Record<string, unknown>), headers: res.headers };
}

export async function expectOk(app: FastifyInstance, args: InjectArgs) {
  const res = await app.inject({
    method: args.method ?? "POST",
    url: args.url,
    payload: args.payload as never,
    headers: args.headers,
  });
  assert.equal(res.statusCode, 200, `${args.url} ${JSON.stringify(args.payload)?.slice(0, 200)} -> ${res.body.slice(0, 300)}`);
  return res;
}

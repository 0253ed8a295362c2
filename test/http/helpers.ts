/** Shared setup for the HTTP tests: a config with test defaults and an app over the fake image service. */
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

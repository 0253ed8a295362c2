/**
 * Starts the HTTP server for `easel serve`: builds the app over a ready ImageService and listens on the
 * configured host and port (127.0.0.1:8080 by default). Inference never runs here: the ImageService hands it
 * to engine worker threads, so the event loop stays free for /healthz and other requests.
 */
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { type CreateAppOptions, createApp } from "./app.ts";

export interface RunningServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  close(): Promise<void>;
}

export async function startServer(opts: CreateAppOptions): Promise<RunningServer> {
  const app = await createApp(opts);
  const { host, port } = opts.config.server;
  await app.listen({ host, port });
  const addr = app.server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return { app, url: `http://${shownHost}:${addr.port}`, close: () => app.close() };
}

/**
 * One server of the gateway benchmark, in its own process (so the gateway, its upstream and the load generator do
 * not share an event loop): `upstream` starts a fast upstream Easel, `gateway <upstream url> <upstream key>` a gateway
 * routing to it. Prints one JSON line `{url, key}` when listening; stops on SIGTERM.
 */
import { startFastUpstream, startGateway } from "../test/gateway/harness.ts";

const [role, upstreamUrl, upstreamKey] = process.argv.slice(2);
let close: () => Promise<void>;
if (role === "upstream") {
  const up = await startFastUpstream({ bench: null });
  close = up.close;
  console.log(JSON.stringify({ url: up.url, key: up.keys.bench }));
} else if (role === "gateway" && upstreamUrl && upstreamKey) {
  const gw = await startGateway(
    {
      queue: { concurrency: 16 },
      providers: {
        easel: { type: "openai", baseUrl: `${upstreamUrl}/v1`, apiKey: upstreamKey, easelExtensions: true },
        seg: { type: "segmind", baseUrl: upstreamUrl, apiKey: upstreamKey },
      },
      models: { entries: { remote: { provider: "easel", upstreamModel: "sd15" }, "remote-pg": { provider: "seg", upstreamModel: "playground-v2.5", aliases: ["playground-v2.5"] } } },
    },
    1e9,
  );
  close = gw.close;
  console.log(JSON.stringify({ url: gw.url, key: gw.key }));
} else {
  console.error("usage: gateway-server.ts upstream | gateway <upstream url> <upstream key>");
  process.exit(2);
}
process.once("SIGTERM", () => void close().finally(() => process.exit(0)));

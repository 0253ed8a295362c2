/**
 * Prompt expansion against a chat-completions server on loopback. The server stands in for a language model: it speaks
 * the OpenAI wire format (POST /v1/chat/completions, a `chat.completion` JSON body, or `chat.completion.chunk` Server-Sent
 * Events ending with `data: [DONE]`, `{error: {...}}` bodies with their statuses) and answers deterministically, so the
 * expanded prompt is known in advance. The expander under test is the one that talks to real servers.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { type ConfigInput, loadConfig } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import { createPromptExpander, type PromptExpander } from "./expansion.ts";

/** What the stand-in model answers for a prompt. */
const answer = (prompt: string) => `${prompt}, golden hour light, intricate detail, wide angle`;

interface Seen {
  auth?: string;
  body: { model: string; messages: { role: string; content: string }[]; stream?: boolean; max_tokens?: number; temperature?: number };
}

const seen: Seen[] = [];
/** Per user prompt: failures still to answer before succeeding. */
const failures = new Map<string, number>();
let server: Server;
let base = "";

async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts).toString("utf8");
}

function error(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code: null } }));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "POST" || req.url !== "/v1/chat/completions") return error(res, 404, `Unknown request URL: ${req.method} ${req.url}`);
  const body = JSON.parse(await readBody(req)) as Seen["body"];
  seen.push({ auth: req.headers.authorization, body });
  if (req.headers.authorization !== "Bearer sk-test-key") return error(res, 401, "Incorrect API key provided: sk-test-key is wrong");
  const user = body.messages.find((m) => m.role === "user")?.content ?? "";
  const left = failures.get(user) ?? 0;
  if (left > 0) {
    failures.set(user, left - 1);
    return error(res, user.includes("rate") ? 429 : 500, "The server had an error while processing your request.", user.includes("rate") ? { "retry-after": "0" } : {});
  }
  if (user === "invalid") return error(res, 400, "Invalid value for 'messages'.");
  if (user === "slow") return; // never answers: the provider's total timeout ends it
  const text = answer(user);
  const id = "chatcmpl-test";
  const created = 1_700_000_000;
  if (!body.stream) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        id,
        object: "chat.completion",
        created,
        model: body.model,
        choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: "stop" }],
        usage: { prompt_tokens: 10, completion_tokens: 12, total_tokens: 22 },
      }),
    );
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: body.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
  res.write(chunk({ role: "assistant", content: "" }, null));
  // Words in separate events, one event split across two writes.
  const words = text.split(/(?= )/);
  for (const w of words) {
    const ev = chunk({ content: w }, null);
    res.write(ev.slice(0, 7));
    res.write(ev.slice(7));
  }
  if (user === "mid-stream error") {
    res.end(`data: ${JSON.stringify({ error: { message: "The model overloaded", type: "server_error" } })}\n\n`);
    return;
  }
  if (user === "cut short") {
    res.end();
    return;
  }
  res.write(chunk({}, "stop"));
  res.end("data: [DONE]\n\n");
}

before(async () => {
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function expander(over: Partial<NonNullable<ConfigInput["promptExpansion"]>> = {}, provider: Record<string, unknown> = {}): PromptExpander {
  const config = loadConfig({
    env: {},
    flags: {
      // A generous deadline (a loaded machine must not turn a slow answer into a retry); the timeout test sets its own.
      providers: { llm: { type: "openai", baseUrl: base, apiKey: "sk-test-key", timeouts: { totalMs: 10_000 }, retries: { max: 2, baseDelayMs: 1, maxDelayMs: 2 }, ...provider } },
      promptExpansion: { provider: "llm", model: "test-chat-model", systemPrompt: "Expand the prompt.", ...over },
    },
  });
  const e = createPromptExpander(config);
  assert.ok(e);
  return e;
}

async function rejectsEasel(p: Promise<unknown>, code: string, pattern: RegExp): Promise<EaselError> {
  const e = await p.then(
    () => assert.fail("expected a rejection"),
    (x: unknown) => x,
  );
  assert.ok(e instanceof EaselError, String(e));
  assert.equal(e.code, code);
  assert.match(e.message, pattern);
  return e;
}

test("non-streaming: the request is a chat completion with the configured model and system prompt; the answer is the prompt", async () => {
  const e = expander();
  seen.length = 0;
  assert.equal(await e.expand("a lighthouse"), answer("a lighthouse"));
  assert.equal(seen.length, 1);
  assert.equal(seen[0].auth, "Bearer sk-test-key");
  assert.equal(seen[0].body.model, "test-chat-model");
  assert.deepEqual(seen[0].body.messages, [
    { role: "system", content: "Expand the prompt." },
    { role: "user", content: "a lighthouse" },
  ]);
  assert.equal(seen[0].body.stream, undefined);
  assert.equal(seen[0].body.max_tokens, 200);
  await e.close();
});

test("streaming: deltas split across events and writes are joined up to data: [DONE]", async () => {
  const e = expander({ stream: true });
  seen.length = 0;
  assert.equal(await e.expand("a red fox in snow"), answer("a red fox in snow"));
  assert.equal(seen[0].body.stream, true);
  await rejectsEasel(e.expand("mid-stream error"), "E_UPSTREAM_FAILED", /failed mid-stream: The model overloaded/);
  await rejectsEasel(e.expand("cut short"), "E_UPSTREAM_FAILED", /ended its stream before data: \[DONE\]/);
  await e.close();
});

test("5xx and 429 are retried with the provider's policy; 400 and 401 fail at once with the provider's message", async () => {
  const e = expander();
  failures.set("flaky", 2);
  seen.length = 0;
  assert.equal(await e.expand("flaky"), answer("flaky"));
  assert.equal(seen.length, 3);
  failures.set("rate limited", 1);
  assert.equal(await e.expand("rate limited"), answer("rate limited"));
  failures.set("down", 5);
  seen.length = 0;
  const down = await rejectsEasel(e.expand("down"), "E_UPSTREAM_FAILED", /answered 500.*after 3 tries/);
  assert.equal(down.param, "expand_prompt");
  assert.equal(seen.length, 3);
  seen.length = 0;
  await rejectsEasel(e.expand("invalid"), "E_UPSTREAM_FAILED", /answered 400: Invalid value for 'messages'/);
  assert.equal(seen.length, 1);
  await e.close();
  const badKey = expander({}, { apiKey: "sk-wrong" });
  const auth = await rejectsEasel(badKey.expand("a cat"), "E_UPSTREAM_FAILED", /answered 401/);
  assert.equal(auth.details?.reason, "auth");
  await badKey.close();
});

test("a provider that does not answer within its total timeout is an E_TIMEOUT after the retries", async () => {
  const e = expander({}, { timeouts: { totalMs: 500 }, retries: { max: 1, baseDelayMs: 1, maxDelayMs: 1 } });
  seen.length = 0;
  const t0 = Date.now();
  await rejectsEasel(e.expand("slow"), "E_TIMEOUT", /did not answer within 500 ms/);
  assert.equal(seen.length, 2);
  assert.ok(Date.now() - t0 >= 1000);
  await e.close();
});

test("without promptExpansion there is no expander; a provider of another type is a configuration error", () => {
  assert.equal(createPromptExpander(loadConfig({ env: {}, flags: {} })), undefined);
  assert.throws(
    () =>
      createPromptExpander(
        loadConfig({ env: {}, flags: { providers: { s: { type: "segmind", baseUrl: base } }, promptExpansion: { provider: "s", model: "m" } } }),
      ),
    /type segmind; chat completions need type "openai"/,
  );
});

/**
 * The documented error shapes (docs/errors.md) as assertions: each dialect's body, its status for the catalog code
 * in `x-easel-error-code`, and the headers it promises on every response (Segmind's x-remaining-credits).
 */
import assert from "node:assert/strict";
import { EaselError, ERROR_CATALOG, type ErrorCode } from "../../src/core/errors.ts";
import type { Dialect } from "../../src/dialects/_shared/dialect.ts";
import { monicaPlaygroundDialect } from "../../src/dialects/monica-playground/index.ts";
import { monicaSdDialect } from "../../src/dialects/monica-sd/index.ts";
import { openAiDialect } from "../../src/dialects/openai/index.ts";
import { PLAYGROUND_CODES } from "../../src/dialects/playground/errors.ts";
import { playgroundDialect } from "../../src/dialects/playground/index.ts";
import { segmindDialect } from "../../src/dialects/segmind/index.ts";

/** Whose shape an answer must have: a dialect id, "native" (Easel's own) or "file" (the bare 404 of /v1/files). */
export type Shape = "openai" | "monica-playground" | "monica-sd" | "playground" | "segmind" | "native" | "file";

const DIALECTS: Record<string, Dialect> = {
  openai: openAiDialect,
  "monica-playground": monicaPlaygroundDialect,
  "monica-sd": monicaSdDialect,
  playground: playgroundDialect,
  segmind: segmindDialect,
};

export interface Answer {
  statusCode: number;
  headers: Record<string, unknown>;
  body: string;
}

function keys(o: object): string[] {
  return Object.keys(o).sort();
}

/** Asserts that an error answer is in `shape`, with its catalog code in x-easel-error-code; returns the code. */
export function assertErrorShape(shape: Shape, res: Answer, where = ""): ErrorCode {
  const at = `${where} -> ${res.statusCode} ${JSON.stringify(res.headers).slice(0, 300)} ${res.body.slice(0, 300)}`;
  assert.ok(res.statusCode >= 400 && res.statusCode < 600, `an error status: ${at}`);
  const code = res.headers["x-easel-error-code"];
  assert.ok(typeof code === "string" && code in ERROR_CATALOG, `x-easel-error-code is a catalog code: ${at}`);
  const c = code as ErrorCode;
  if (shape === "file") {
    assert.deepEqual([res.statusCode, res.body], [404, ""], `bare 404: ${at}`);
    return c;
  }
  assert.match(String(res.headers["content-type"]), /^application\/json/, `JSON body: ${at}`);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  if (shape === "native") {
    assert.equal(res.statusCode, ERROR_CATALOG[c].status, `catalog status: ${at}`);
    assert.deepEqual(keys(body), ["error"], at);
    const e = body.error as Record<string, unknown>;
    assert.deepEqual(keys(e), ["code", "message", "param"], at);
    assert.equal(e.code, c, at);
    assert.equal(typeof e.message, "string", at);
    assert.ok(e.param === null || typeof e.param === "string", at);
    return c;
  }
  const expected = DIALECTS[shape].errorReply(new EaselError(c, "x"));
  assert.equal(res.statusCode, expected.status, `the dialect's status for ${c}: ${at}`);
  if (shape === "openai" || shape === "monica-playground" || shape === "monica-sd") {
    assert.deepEqual(keys(body), ["error"], at);
    const e = body.error as Record<string, unknown>;
    assert.deepEqual(keys(e), ["code", "message", "param", "type"], at);
    assert.equal(typeof e.message, "string", at);
    assert.equal(typeof e.type, "string", at);
    assert.ok(e.param === null || typeof e.param === "string", at);
    assert.ok(e.code === null || typeof e.code === "string", at);
    return c;
  }
  assert.equal(typeof body.error, "string", at);
  assert.ok(keys(body).every((k) => ["error", "code", "param"].includes(k)), at);
  assert.ok(body.param === undefined || typeof body.param === "string", at);
  if (shape === "playground") assert.equal(body.code, PLAYGROUND_CODES[c], at);
  if (shape === "segmind") {
    assert.equal(body.code, c, at);
    assert.match(String(res.headers["x-remaining-credits"]), /^(\d+(\.\d+)?|Infinity)$/, `x-remaining-credits: ${at}`);
  }
  return c;
}

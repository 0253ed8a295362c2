/**
 * The copies of the Playground and Monica sampler vocabularies kept where this folder cannot be imported agree with
 * it: the upstream providers sit below the dialects (DESIGN.md §2) and the page is a browser bundle that must not
 * carry the samplers. Every canonical id -> name they hold is an exact mapping here on the model kind of that id, and
 * every id that has an exact name here is in them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Capabilities } from "../../providers/_shared/upstream.ts";
import { describeMonicaModel } from "../../providers/monica/models.ts";
import { describePlaygroundModel } from "../../providers/playground/models.ts";
import { MONICA_SCHEDULERS as WEB_MONICA, PLAYGROUND_SCHEDULERS as WEB_PLAYGROUND } from "../../../web/src/requests.ts";
import { MONICA_SAMPLERS, type ModelKind, PLAYGROUND_SAMPLERS, schedulersForKind } from "./sampler-names.ts";

type Table = typeof PLAYGROUND_SAMPLERS;
const KINDS: ModelKind[] = ["vp", "edm", "flow"];
const kindOf = (id: string): ModelKind => KINDS.find((k) => schedulersForKind(k).includes(id)) ?? assert.fail(`${id} is no scheduler id`);

/** Checks a copy, given as the id -> name map of each kind. */
function assertCopyOf(source: Table, copy: Record<ModelKind, Record<string, string>>, what: string): void {
  for (const kind of KINDS) {
    for (const [id, name] of Object.entries(copy[kind] ?? {})) {
      assert.equal(kindOf(id), kind, `${what}: ${id} listed under ${kind}`);
      const m = source[name]?.[kind];
      assert.ok(m?.exact && m.id === id, `${what}: ${id} -> ${name} on ${kind}, but the vocabulary maps ${name} to ${m?.id} (${m?.exact ? "exact" : "nearest"})`);
    }
    const exactIds = new Set(Object.values(source).flatMap((byKind) => (byKind[kind].exact ? [byKind[kind].id] : [])));
    assert.deepEqual(Object.keys(copy[kind] ?? {}).sort(), [...exactIds].sort(), `${what}: the ids with an exact ${kind} name`);
  }
}

/** A provider's flat id -> name map (Capabilities.schedulers), split by the kind of each id. */
function byKind(flat: Capabilities["schedulers"]): Record<ModelKind, Record<string, string>> {
  assert.ok(typeof flat === "object", "the provider names its samplers");
  const out: Record<ModelKind, Record<string, string>> = { vp: {}, edm: {}, flow: {} };
  for (const [id, name] of Object.entries(flat)) out[kindOf(id)][id] = name;
  return out;
}

test("Playground: the provider's and the page's scheduler names are the vocabulary's exact ones", () => {
  assertCopyOf(PLAYGROUND_SAMPLERS, byKind(describePlaygroundModel("Playground_v2.5", { id: "pg" }).caps.schedulers), "providers/playground");
  assertCopyOf(PLAYGROUND_SAMPLERS, WEB_PLAYGROUND as Record<ModelKind, Record<string, string>>, "web/src/requests.ts");
});

test("Monica: the provider's and the page's scheduler names are the vocabulary's exact ones", () => {
  assertCopyOf(MONICA_SAMPLERS, byKind(describeMonicaModel("sdxl", { id: "monica" }).caps.schedulers), "providers/monica");
  assertCopyOf(MONICA_SAMPLERS, WEB_MONICA as Record<ModelKind, Record<string, string>>, "web/src/requests.ts");
});

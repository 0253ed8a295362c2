/**
 * Numerical parity of a model folder between the torch modules (parity.py writes inputs + torch outputs) and
 * Easel's ONNX graphs built from the same files: tokenizer ids, text encoder, UNet and VAE decoder outputs.
 *
 *   node --import tsx tools/train-default-model/parity.ts MODEL_DIR CASE_DIR
 */
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importExport } from "./easel-api.ts";

type F32 = { data: Float32Array; shape: number[] };

function readRef(base: string): F32 | { data: BigInt64Array; shape: number[] } {
  const meta = JSON.parse(readFileSync(`${base}.json`, "utf8")) as { shape: number[]; dtype: string };
  const buf = readFileSync(`${base}.bin`);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  if (meta.dtype === "int64") return { data: new BigInt64Array(ab), shape: meta.shape };
  return { data: new Float32Array(ab), shape: meta.shape };
}

function maxDiff(a: Float32Array, b: Float32Array): { abs: number; ref: number } {
  let m = 0;
  let r = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    r = Math.max(r, Math.abs(b[i]));
  }
  return { abs: m, ref: r };
}

const [modelDir, caseDir] = process.argv.slice(2);
const cacheDir = join(tmpdir(), "easel-shapes-parity-cache");
const opts = { cacheDir, executionProvider: "cpu" as const };
type Prep = (dir: string, o: object) => { modelPath: string };
type Session = { run(f: Record<string, unknown>, o?: string[]): Promise<Record<string, { data: Float32Array; shape: number[] }>> };
const createSession = await importExport<(p: string, o?: object) => Promise<Session>>("createSession");
const loadClipTokenizer = await importExport<(d: string) => { encodeForModel(t: string): { ids: ArrayLike<number> } }>("loadClipTokenizer");

let ok = true;
const report = (name: string, got: Float32Array, ref: F32) => {
  const d = maxDiff(got, ref.data);
  const pass = d.abs <= 1e-3 * Math.max(1, d.ref);
  ok &&= pass;
  console.log(`${name}: max |diff| ${d.abs.toExponential(3)} (max |ref| ${d.ref.toFixed(3)}) ${pass ? "ok" : "MISMATCH"}`);
};

// Tokenizer: every prompt of prompts.json through Easel's tokenizer vs the Python ids.
const cases = JSON.parse(readFileSync(join(caseDir, "prompts.json"), "utf8")) as { prompt: string; ids: number[] }[];
const tok = loadClipTokenizer(join(modelDir, "tokenizer"));
let bad = 0;
for (const c of cases) {
  const ids = Array.from(tok.encodeForModel(c.prompt).ids);
  if (ids.join(",") !== c.ids.join(",")) {
    if (bad++ < 5) console.log(`tokenizer mismatch: ${JSON.stringify(c.prompt)}\n  easel ${ids}\n  torch ${c.ids}`);
  }
}
console.log(`tokenizer: ${cases.length - bad}/${cases.length} prompts give identical ids`);
ok &&= bad === 0;

const text = await createSession((await importExport<Prep>("prepareClipTextModel"))(join(modelDir, "text_encoder"), opts).modelPath);
const ids = readRef(join(caseDir, "input_ids"));
const hidden = (await text.run({ input_ids: ids }, ["last_hidden_state"])).last_hidden_state;
report("text_encoder last_hidden_state", hidden.data, readRef(join(caseDir, "hidden")) as F32);

const unet = await createSession((await importExport<Prep>("prepareUnetModel"))(join(modelDir, "unet"), opts).modelPath);
const sample = readRef(join(caseDir, "sample")) as F32;
const timestep = readRef(join(caseDir, "timestep")) as F32;
const ctx = readRef(join(caseDir, "hidden")) as F32;
const out = (await unet.run({ sample, timestep, encoder_hidden_states: ctx }, ["out_sample"])).out_sample;
report("unet out_sample", out.data, readRef(join(caseDir, "unet_out")) as F32);

const dec = await createSession((await importExport<Prep>("prepareVaeDecoder"))(join(modelDir, "vae"), opts).modelPath);
const img = (await dec.run({ latent: readRef(join(caseDir, "latent")) }, ["sample"])).sample;
report("vae decoder sample", img.data, readRef(join(caseDir, "decoded")) as F32);

const enc = await createSession((await importExport<Prep>("prepareVaeEncoder"))(join(modelDir, "vae"), opts).modelPath);
const mom = (await enc.run({ image: readRef(join(caseDir, "image")) }, ["moments"])).moments;
report("vae encoder moments", mom.data, readRef(join(caseDir, "moments")) as F32);

console.log(ok ? "PARITY OK" : "PARITY FAILED");
process.exit(ok ? 0 : 1);

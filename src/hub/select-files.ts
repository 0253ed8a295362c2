/**
 * Which files of a diffusers pipeline repository the engine needs: `model_index.json`, and in each component folder
 * it names the configs, tokenizer files and the weights of one precision (a sharded index with its shards, or the
 * single safetensors file). Never pickles (`.bin`, `.ckpt`, `.pt`), ONNX, Flax/TF (`.msgpack`, `.h5`), root-level
 * single-file checkpoints, folders model_index.json does not name, nor a second precision of the same weights.
 * The precision rule is the one `loadCheckpoint` applies to the folder afterwards (graph/safetensors.ts).
 */
import { EaselError } from "../core/errors.ts";
import { variantOf, type WeightVariant } from "../graph/safetensors.ts";

/** One file of the repository tree (`GET /api/models/{repo}/tree/{rev}?recursive=true`). */
export interface HubFile {
  path: string;
  size: number;
  /** Git blob id (sha1 of "blob <size>\0" + content) for files stored in git. */
  oid?: string;
  /** Present for files stored with LFS: `oid` is the sha256 of the content. */
  lfs?: { oid: string; size: number };
}

/** Small non-weight files a component folder may need (configs, tokenizer vocabularies, sentencepiece models). */
const SUPPORT_RE = /\.(json|txt|model)$/;
const INDEX_RE = /\.safetensors\.index(\.[A-Za-z0-9_]+)?\.json$/;
const SHARD_RE = /-\d{5}-of-\d{5}/;

/** The component folders model_index.json names (everything but `_keys` and `[null, null]` entries). */
export function componentFolders(modelIndex: Record<string, unknown>): string[] {
  return Object.entries(modelIndex)
    .filter(([k, v]) => !k.startsWith("_") && Array.isArray(v) && v.length === 2 && v[0] !== null && v[1] !== null)
    .map(([k]) => k);
}

/** The weight files of one folder for `variant` (undefined = plain), or undefined when it has none of that precision. */
function weightsOf(names: string[], variant: WeightVariant | undefined): string[] | undefined {
  const index = names.find((n) => INDEX_RE.test(n) && variantOf(n) === variant);
  if (index) {
    const shards = names.filter((n) => n.endsWith(".safetensors") && SHARD_RE.test(n) && variantOf(n) === variant);
    return [index, ...shards];
  }
  const singles = names.filter((n) => n.endsWith(".safetensors") && !SHARD_RE.test(n) && variantOf(n) === variant);
  return singles.length > 0 ? singles : undefined;
}

/**
 * The files to download, in tree order, for the components `modelIndex` names. With `variant`, a component that has
 * that precision gets it and one without gets its plain files (as diffusers' `variant=` loads); without, the plain
 * files, else fp16, else bf16.
 */
export function selectPipelineFiles(tree: HubFile[], modelIndex: Record<string, unknown>, variant?: WeightVariant): HubFile[] {
  const byPath = new Map(tree.map((f) => [f.path, f]));
  const picked = ["model_index.json"];
  const missing: string[] = [];
  for (const folder of componentFolders(modelIndex)) {
    const names = tree
      .map((f) => f.path)
      .filter((p) => p.startsWith(`${folder}/`) && !p.slice(folder.length + 1).includes("/"))
      .map((p) => p.slice(folder.length + 1))
      .sort();
    if (names.length === 0) {
      missing.push(folder);
      continue;
    }
    picked.push(...names.filter((n) => SUPPORT_RE.test(n) && !INDEX_RE.test(n)).map((n) => `${folder}/${n}`));
    const order: (WeightVariant | undefined)[] = variant ? [variant, undefined] : [undefined, "fp16", "bf16"];
    for (const v of order) {
      const w = weightsOf(names, v);
      if (w) {
        picked.push(...w.map((n) => `${folder}/${n}`));
        break;
      }
    }
  }
  if (missing.length > 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `model_index.json names component folders the repository does not have: ${missing.join(", ")}`, {
      details: { missing },
    });
  }
  return picked.map((p) => byPath.get(p)!).filter(Boolean);
}

/**
 * Writes a built graph as an .onnx file whose initializers point (ONNX external data) into the checkpoint's own
 * safetensors files, so weights are never copied and models over the 2 GiB protobuf limit work.
 *
 * onnxruntime (1.17+) only accepts external-data locations that are relative and stay inside the model's
 * directory, so each weight file is linked next to the .onnx file (symlink; a hard link or, as a last resort, a
 * copy where symlinks are not allowed) and the location is that link's bare name.
 */
import { copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { EaselError } from "../core/errors.ts";
import { type BuiltGraph, toModelSpec } from "./builder.ts";
import { encodeModel } from "./onnx-proto.ts";

export interface SavedModel {
  modelPath: string;
  /** Bare names of the links created beside the model, one per external weight file. */
  links: string[];
}

/** Links `target` at `linkPath` (replacing a stale link) and reports how. */
function linkWeightFile(target: string, linkPath: string): void {
  if (existsSync(linkPath) || isDanglingLink(linkPath)) {
    if (lstatSync(linkPath).isSymbolicLink() && readlinkSync(linkPath) === target) return;
    unlinkSync(linkPath);
  }
  try {
    symlinkSync(target, linkPath);
    return;
  } catch {
    // fall through: file systems or platforms without symlink permission
  }
  try {
    linkSync(target, linkPath);
  } catch {
    copyFileSync(target, linkPath);
  }
}

function isDanglingLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Writes `graph` to `dir/fileName` with its external weight files linked beside it as `w<i>-<basename>`.
 * Returns the absolute model path.
 */
export function saveModel(graph: BuiltGraph, dir: string, fileName: string, metadata?: Record<string, string>): SavedModel {
  const outDir = resolve(dir);
  mkdirSync(outDir, { recursive: true });
  const names = new Map<string, string>();
  graph.externalFiles.forEach((file, i) => {
    if (!existsSync(file)) throw new EaselError("E_CHECKPOINT_INVALID", `weight file ${file} does not exist`, { details: { file } });
    const name = `w${i}-${basename(file)}`;
    linkWeightFile(resolve(file), join(outDir, name));
    names.set(file, name);
  });
  const spec = toModelSpec(
    graph,
    (file) => {
      const n = names.get(file);
      if (!n) throw new EaselError("E_INTERNAL", `external file ${file} was not linked`);
      return n;
    },
    metadata,
  );
  const modelPath = join(outDir, fileName);
  writeFileSync(modelPath, encodeModel(spec));
  return { modelPath, links: [...names.values()] };
}

/**
 * The image safety check of a run, inside the inference worker: the checker of the model (its safety_checker
 * component, or config.safety.checkerDir) runs on every output image before any image leaves the worker. A flagged
 * image is replaced by a black image of the same size (diffusers' behaviour) with a W_IMAGE_FLAGGED warning, or the run
 * fails with E_PROMPT_UNSAFE (config.safety.onFlagged "refuse"), so a flagged image is never encoded or stored.
 */
import { basename } from "node:path";
import { EaselError } from "../core/errors.ts";
import { blackImage, findSafetyChecker, type LoadedSafetyChecker, loadSafetyChecker } from "../models/components/safety-checker.ts";
import type { PipelineOutput, RuntimeOptions } from "../models/pipeline/family.ts";

export interface SafetyRun {
  /** The request asked for the check (a model without a checker is then an error, never a silent pass). */
  requested: boolean;
  /** A StableDiffusionSafetyChecker folder for models without their own. */
  checkerDir?: string;
  onFlagged: "black" | "refuse";
}

export interface SafetyCheckers {
  apply(modelDir: string, output: PipelineOutput, run: SafetyRun): Promise<void>;
  release(): Promise<void>;
}

export function createSafetyCheckers(rt: RuntimeOptions): SafetyCheckers {
  const loaded = new Map<string, Promise<LoadedSafetyChecker>>();
  return {
    async apply(modelDir, output, run) {
      const loc = findSafetyChecker(modelDir, run.checkerDir);
      if (!loc) {
        if (!run.requested) return;
        throw new EaselError(
          "E_NOT_SUPPORTED",
          `safety_check: model "${basename(modelDir)}" has no safety checker (no safety_checker component) and no safety.checkerDir is configured`,
          { param: "safety_check" },
        );
      }
      let checker = loaded.get(loc.dir);
      if (!checker) {
        checker = loadSafetyChecker(loc, { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider, intraOpThreads: rt.intraOpThreads });
        loaded.set(loc.dir, checker);
        checker.catch(() => loaded.delete(loc.dir));
      }
      const verdicts = await (await checker).check(output.images);
      const flagged = verdicts.flatMap((v, i) => (v.flagged ? [i] : []));
      if (flagged.length === 0) return;
      const which = flagged.map((i) => i + 1).join(", ");
      if (run.onFlagged === "refuse") {
        throw new EaselError("E_PROMPT_UNSAFE", `The safety checker flagged generated image ${which} of ${output.images.length}; nothing is returned.`, {
          param: "safety_check",
          details: { reason: "image_flagged", flagged },
        });
      }
      for (const i of flagged) output.images[i] = blackImage(output.images[i]);
      output.warnings.push({ code: "W_IMAGE_FLAGGED", message: `The safety checker flagged image ${which} of ${output.images.length}; it is replaced by a black image.`, param: "safety_check" });
    },
    async release() {
      const all = [...loaded.values()];
      loaded.clear();
      for (const c of all) await (await c.catch(() => undefined))?.release();
    },
  };
}

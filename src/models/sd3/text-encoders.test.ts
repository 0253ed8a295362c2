import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { expectClose, readRefFloat32, readRefTensor } from "../../../test/helpers/tensors.ts";
import { createSession } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";

const FIX = join(import.meta.dirname, "../../../test/fixtures");
const work = mkdtempSync(join(tmpdir(), "easel-sd3-clip-"));
after(() => rmSync(work, { recursive: true, force: true }));

// SD3's two CLIPs are both CLIPTextModelWithProjection; the pipeline uses hidden_states[-2] and text_embeds.
for (const name of ["text_encoder", "text_encoder_2"]) {
  test(`SD3 ${name} matches transformers: modules/sd3/${name}`, async () => {
    const m = prepareClipTextModel(join(FIX, "models/sd3", name), { cacheDir: work, outputHiddenStates: true });
    const session = await createSession(m.modelPath);
    try {
      const caseDir = join(FIX, "modules/sd3", name);
      const ids = readRefTensor(join(caseDir, "input_ids"));
      const out = await session.run({ input_ids: { data: BigInt64Array.from(ids.data as Int32Array, (x) => BigInt(x)), shape: ids.shape } });
      for (const o of ["hidden_states", "last_hidden_state", "text_embeds"]) {
        const ref = readRefFloat32(join(caseDir, o));
        assert.deepEqual(out[o].shape, ref.shape, o);
        expectClose(out[o].data as Float32Array, ref, { what: `${name} ${o}` });
      }
      const hs = readRefFloat32(join(caseDir, "hidden_states"));
      const per = hs.data.length / hs.shape[0];
      expectClose(out.penultimate_hidden_state.data as Float32Array, hs.data.subarray((hs.shape[0] - 2) * per, (hs.shape[0] - 1) * per), {
        what: `${name} penultimate`,
      });
    } finally {
      await session.release();
    }
  });
}

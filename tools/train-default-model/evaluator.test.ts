/**
 * The evaluator reads back scenes drawn by the renderer (TS mirror, sharp-edged and blurred) and by shapes.py
 * (PNG fixtures). Run: node --import tsx --test tools/train-default-model/evaluator.test.ts
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import sharp from "sharp";
import { COLOURS, POSITIONS, readScene, type Scene, SHAPES, SIZES, scoreReading } from "./evaluator.ts";
import { boxBlur, prng, renderScene, W } from "./scene.ts";

const HERE = import.meta.dirname;

function check(scene: Scene, img: Uint8Array, label: string): void {
  const got = readScene(img, W, W);
  const s = scoreReading(scene, got);
  for (const [attr, pairs] of Object.entries(s.pairs)) {
    for (const [want, have] of pairs) assert.equal(have, want, `${label}: ${attr} (read ${JSON.stringify(got.objects.map((o) => [o.shape, o.fill.toFixed(2), o.solidity.toFixed(2)]))})`);
  }
  assert.equal(got.objects.length, scene.objects.length, `${label}: object count`);
}

test("every shape x size x position on contrasting backgrounds reads back exactly", () => {
  const rand = prng(1);
  let k = 0;
  for (const shape of SHAPES) {
    for (const size of SIZES) {
      for (const position of POSITIONS) {
        const background = COLOURS[k % COLOURS.length];
        const colour = COLOURS[(k * 5 + 3) % COLOURS.length] === background ? COLOURS[(k + 1) % COLOURS.length] : COLOURS[(k * 5 + 3) % COLOURS.length];
        k++;
        const scene: Scene = { background, objects: [{ colour, shape, size, position }] };
        check(scene, renderScene(scene, rand), `${colour} ${size} ${shape} ${position} on ${background}`);
      }
    }
  }
});

test("soft edges (box blur radius 1) still read back", () => {
  const rand = prng(2);
  for (const shape of SHAPES) {
    for (const size of SIZES) {
      for (const [colour, background] of [
        ["red", "white"],
        ["yellow", "blue"],
        ["black", "cyan"],
        ["white", "black"],
      ]) {
        const scene: Scene = { background, objects: [{ colour, shape, size, position: "center" }] };
        check(scene, boxBlur(renderScene(scene, rand), 1), `blurred ${colour} ${size} ${shape} on ${background}`);
      }
    }
  }
});

test("two objects side by side read back left to right", () => {
  const rand = prng(3);
  for (const a of SHAPES) {
    for (const b of SHAPES) {
      for (const size of ["small", "medium"] as const) {
        const scene: Scene = {
          background: "gray",
          objects: [
            { colour: "orange", shape: a, size, position: "left" },
            { colour: "purple", shape: b, size, position: "right" },
          ],
        };
        const img = renderScene(scene, rand);
        check(scene, img, `${size} orange ${a} and purple ${b}`);
        assert.equal(scoreReading(scene, readScene(img, W, W)).twoObject, true);
      }
    }
  }
});

test("an empty image finds no object; the scorer reports it as 'none'", () => {
  const img = renderScene({ background: "green", objects: [] }, prng(4));
  const got = readScene(img, W, W);
  assert.equal(got.background, "green");
  assert.equal(got.objects.length, 0);
  const s = scoreReading({ background: "green", objects: [{ colour: "red", shape: "star", size: "small", position: "left" }] }, got);
  assert.deepEqual(s.pairs.shape, [["star", "none"]]);
});

test("PNG fixtures rendered by shapes.py read back exactly", async () => {
  const truth = JSON.parse(readFileSync(join(HERE, "fixtures", "truth.json"), "utf8")) as { file: string; scene: Scene }[];
  assert.ok(truth.length >= 10);
  for (const t of truth) {
    const { data, info } = await sharp(join(HERE, "fixtures", t.file)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, W);
    check(t.scene, new Uint8Array(data), t.file);
  }
});

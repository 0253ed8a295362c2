/**
 * TypeScript mirror of shapes.py's renderer (same geometry: bounding-box width per size class, bounding-box centre
 * inside its third, star inner radius 0.45, 4x4 supersampling at half coverage), for the evaluator's tests.
 */
import { mulberry32 } from "../../src/models/testing/random-safetensors.ts";
import { PALETTE, type Position, type Scene, type Shape, type Size } from "./evaluator.ts";

export const W = 128;
const SIZE_FRAC: Record<Size, number> = { small: 0.2, medium: 0.4, large: 0.6 };
const POS_CELL: Record<Position, [number, number]> = {
  center: [1, 1],
  left: [0, 1],
  right: [2, 1],
  top: [1, 0],
  bottom: [1, 2],
  "top left": [0, 0],
  "top right": [2, 0],
  "bottom left": [0, 2],
  "bottom right": [2, 2],
};
const STAR_INNER = 0.45;
const rad = (d: number) => (d * Math.PI) / 180;

/** A small seeded PRNG returning [0, 1): the one the tiny checkpoints use (mulberry32). */
export const prng = mulberry32;

export function shapeExtent(shape: Shape, span: number): [number, number] {
  if (shape === "triangle") return [span, (span * Math.sqrt(3)) / 2];
  if (shape === "star") {
    const r = span / (2 * Math.sin(rad(72)));
    return [span, r * (1 + Math.cos(rad(36)))];
  }
  return [span, span];
}

export interface Placed {
  shape: Shape;
  rgb: [number, number, number];
  cx: number;
  cy: number;
  span: number;
}

export function place(scene: Scene, rand: () => number): Placed[] {
  const uni = (a: number, b: number) => a + (b - a) * rand();
  return scene.objects.map((o) => {
    const span = SIZE_FRAC[o.size] * W * uni(0.92, 1.04);
    const [w, h] = shapeExtent(o.shape, span);
    const [col, row] = POS_CELL[o.position];
    const c = [
      [col, w / 2],
      [row, h / 2],
    ].map(([idx, half], axis) => {
      const lo = (idx * W) / 3;
      const hi = ((idx + 1) * W) / 3;
      const jitter = scene.objects.length === 2 && axis === 0 ? 3 : 6;
      let centre = (lo + hi) / 2 + uni(-jitter, jitter);
      centre = Math.min(Math.max(centre, half + 1), W - half - 1);
      return Math.min(Math.max(centre, lo + 1), hi - 1);
    });
    return { shape: o.shape, rgb: PALETTE[o.colour], cx: c[0], cy: c[1], span };
  });
}

function polygonInside(pts: [number, number][], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0; i < pts.length; i++) {
    const [x1, y1] = pts[i];
    const [x2, y2] = pts[(i + 1) % pts.length];
    if (y1 === y2) continue;
    if (y1 > y !== y2 > y && x < x1 + ((y - y1) * (x2 - x1)) / (y2 - y1)) inside = !inside;
  }
  return inside;
}

export function shapeMask(p: Placed, ss = 4): Uint8Array {
  const [, h] = shapeExtent(p.shape, p.span);
  let pts: [number, number][] = [];
  if (p.shape === "triangle") {
    const top = p.cy - h / 2;
    pts = [
      [p.cx, top],
      [p.cx + p.span / 2, top + h],
      [p.cx - p.span / 2, top + h],
    ];
  } else if (p.shape === "star") {
    const r = p.span / (2 * Math.sin(rad(72)));
    const oy = p.cy - h / 2 + r;
    for (let k = 0; k < 10; k++) {
      const rr = k % 2 === 0 ? r : r * STAR_INNER;
      const a = rad(-90 + 36 * k);
      pts.push([p.cx + rr * Math.cos(a), oy + rr * Math.sin(a)]);
    }
  }
  const inside = (x: number, y: number) => {
    if (p.shape === "circle") return (x - p.cx) ** 2 + (y - p.cy) ** 2 <= (p.span / 2) ** 2;
    if (p.shape === "square") return Math.abs(x - p.cx) <= p.span / 2 && Math.abs(y - p.cy) <= p.span / 2;
    return polygonInside(pts, x, y);
  };
  const mask = new Uint8Array(W * W);
  for (let py = 0; py < W; py++) {
    for (let px = 0; px < W; px++) {
      let c = 0;
      for (let sy = 0; sy < ss; sy++) for (let sx = 0; sx < ss; sx++) if (inside(px + (sx + 0.5) / ss, py + (sy + 0.5) / ss)) c++;
      mask[py * W + px] = c * 2 >= ss * ss ? 1 : 0;
    }
  }
  return mask;
}

/** RGB HWC, W x W. */
export function renderScene(scene: Scene, rand: () => number): Uint8Array {
  const img = new Uint8Array(W * W * 3);
  const bg = PALETTE[scene.background];
  for (let i = 0; i < W * W; i++) img.set(bg, 3 * i);
  for (const p of place(scene, rand)) {
    const m = shapeMask(p);
    for (let i = 0; i < W * W; i++) if (m[i]) img.set(p.rgb, 3 * i);
  }
  return img;
}

/** Box blur of radius r (a stand-in for a VAE's soft edges). */
export function boxBlur(img: Uint8Array, r: number): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let y = 0; y < W; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        let k = 0;
        for (let dy = -r; dy <= r; dy++) {
          for (let dx = -r; dx <= r; dx++) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy < 0 || yy >= W || xx < 0 || xx >= W) continue;
            s += img[3 * (yy * W + xx) + c];
            k++;
          }
        }
        out[3 * (y * W + x) + c] = Math.round(s / k);
      }
    }
  }
  return out;
}

/**
 * Reads a generated easel-shapes image back into a scene: background colour, then each object (a connected region
 * of non-background pixels) with its colour, shape, size class and position class. Pure functions, no I/O.
 *
 * - Every pixel is labelled with its nearest palette colour; the background is the most common label on the border.
 * - Objects are 4-connected regions of non-background labels with at least MIN_AREA pixels (soft edges between two
 *   colours can land on a third palette colour; such slivers are small and dropped). An object's colour is the most
 *   common label inside it.
 * - Shape from geometry: solidity (area / convex hull area) separates the star (~0.55) from convex shapes; the fill
 *   ratio of the bounding box then separates square (1.0), circle (pi/4 = 0.785) and triangle (0.5).
 * - Size from the bounding-box width relative to the image width (< 0.3 small, < 0.5 medium, else large); position
 *   from the third (across and down) that holds the bounding box's centre.
 */

export const PALETTE: Record<string, [number, number, number]> = {
  red: [0xdc, 0x1e, 0x1e],
  orange: [0xf5, 0x82, 0x14],
  yellow: [0xf5, 0xd7, 0x1e],
  green: [0x28, 0xaa, 0x3c],
  blue: [0x1e, 0x50, 0xdc],
  purple: [0x82, 0x32, 0xb4],
  pink: [0xf0, 0x78, 0xbe],
  brown: [0x82, 0x50, 0x28],
  black: [0x14, 0x14, 0x14],
  white: [0xf0, 0xf0, 0xf0],
  gray: [0x80, 0x80, 0x80],
  cyan: [0x28, 0xc8, 0xdc],
};
export const COLOURS = Object.keys(PALETTE);
export const SHAPES = ["circle", "square", "triangle", "star"] as const;
export const SIZES = ["small", "medium", "large"] as const;
export const POSITIONS = ["center", "left", "right", "top", "bottom", "top left", "top right", "bottom left", "bottom right"] as const;

export type Shape = (typeof SHAPES)[number];
export type Size = (typeof SIZES)[number];
export type Position = (typeof POSITIONS)[number];

export interface SceneObject {
  colour: string;
  shape: Shape;
  size: Size;
  position: Position;
}

export interface Scene {
  background: string;
  objects: SceneObject[];
}

export interface DetectedObject extends SceneObject {
  area: number;
  bbox: { x0: number; y0: number; x1: number; y1: number };
  fill: number;
  solidity: number;
}

export interface Reading {
  background: string;
  /** Objects left to right (by bounding-box centre). */
  objects: DetectedObject[];
}

export const MIN_AREA_FRACTION = 0.004; // 66 pixels at 128x128; a small object covers >= ~250

/** Nearest palette colour index of an RGB triple. */
export function nearestColour(r: number, g: number, b: number): number {
  let best = 0;
  let bestD = Number.POSITIVE_INFINITY;
  for (let i = 0; i < COLOURS.length; i++) {
    const p = PALETTE[COLOURS[i]];
    const d = (r - p[0]) ** 2 + (g - p[1]) ** 2 + (b - p[2]) ** 2;
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

function argmax(counts: number[]): number {
  let best = 0;
  for (let i = 1; i < counts.length; i++) if (counts[i] > counts[best]) best = i;
  return best;
}

/** Area of the convex hull of points (Andrew's monotone chain). */
export function convexHullArea(xs: number[], ys: number[]): number {
  const pts = xs.map((x, i) => [x, ys[i]] as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return 0;
  const cross = (o: number[], a: number[], b: number[]) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: [number, number][] = [];
  for (const p of pts) {
    while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], p) <= 0) lower.pop();
    lower.push(p);
  }
  const upper: [number, number][] = [];
  for (let i = pts.length - 1; i >= 0; i--) {
    const p = pts[i];
    while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], p) <= 0) upper.pop();
    upper.push(p);
  }
  const hull = [...lower.slice(0, -1), ...upper.slice(0, -1)];
  let a = 0;
  for (let i = 0; i < hull.length; i++) {
    const [x1, y1] = hull[i];
    const [x2, y2] = hull[(i + 1) % hull.length];
    a += x1 * y2 - x2 * y1;
  }
  return Math.abs(a) / 2;
}

export function classifyShape(fill: number, solidity: number): Shape {
  if (solidity < 0.78) return "star";
  if (fill > 0.89) return "square";
  if (fill > 0.64) return "circle";
  return fill < 0.44 ? "star" : "triangle";
}

export function sizeClass(widthFraction: number): Size {
  return widthFraction < 0.3 ? "small" : widthFraction < 0.5 ? "medium" : "large";
}

export function positionClass(cx: number, cy: number, width: number, height: number): Position {
  const col = Math.min(2, Math.max(0, Math.floor((3 * cx) / width)));
  const row = Math.min(2, Math.max(0, Math.floor((3 * cy) / height)));
  const v = ["top", "", "bottom"][row];
  const h = ["left", "", "right"][col];
  if (!v && !h) return "center";
  return (v && h ? `${v} ${h}` : v || h) as Position;
}

/** rgb: 8-bit RGB, HWC, width*height*3 values. */
export function readScene(rgb: Uint8Array, width: number, height: number): Reading {
  const n = width * height;
  const label = new Uint8Array(n);
  for (let i = 0; i < n; i++) label[i] = nearestColour(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
  const border = new Array(COLOURS.length).fill(0);
  for (let x = 0; x < width; x++) {
    border[label[x]]++;
    border[label[(height - 1) * width + x]]++;
  }
  for (let y = 0; y < height; y++) {
    border[label[y * width]]++;
    border[label[y * width + width - 1]]++;
  }
  const bg = argmax(border);

  const comp = new Int32Array(n).fill(-1);
  const objects: DetectedObject[] = [];
  const minArea = Math.max(8, Math.round(MIN_AREA_FRACTION * n));
  const stack: number[] = [];
  let next = 0;
  for (let start = 0; start < n; start++) {
    if (label[start] === bg || comp[start] !== -1) continue;
    const id = next++;
    comp[start] = id;
    stack.push(start);
    const xs: number[] = [];
    const ys: number[] = [];
    const counts = new Array(COLOURS.length).fill(0);
    while (stack.length) {
      const p = stack.pop() as number;
      const x = p % width;
      const y = (p - x) / width;
      xs.push(x);
      ys.push(y);
      counts[label[p]]++;
      const nb = [x > 0 ? p - 1 : -1, x < width - 1 ? p + 1 : -1, y > 0 ? p - width : -1, y < height - 1 ? p + width : -1];
      for (const q of nb) {
        if (q >= 0 && comp[q] === -1 && label[q] !== bg) {
          comp[q] = id;
          stack.push(q);
        }
      }
    }
    const area = xs.length;
    if (area < minArea) continue;
    const x0 = Math.min(...xs);
    const x1 = Math.max(...xs) + 1;
    const y0 = Math.min(...ys);
    const y1 = Math.max(...ys) + 1;
    const fill = area / ((x1 - x0) * (y1 - y0));
    // Hull of the pixel squares' corners: a filled convex region has solidity ~1.
    const cx: number[] = [];
    const cy: number[] = [];
    for (let i = 0; i < xs.length; i++) {
      cx.push(xs[i], xs[i] + 1, xs[i], xs[i] + 1);
      cy.push(ys[i], ys[i], ys[i] + 1, ys[i] + 1);
    }
    const hull = convexHullArea(cx, cy);
    const solidity = hull > 0 ? area / hull : 1;
    objects.push({
      colour: COLOURS[argmax(counts)],
      shape: classifyShape(fill, solidity),
      size: sizeClass((x1 - x0) / width),
      position: positionClass((x0 + x1) / 2, (y0 + y1) / 2, width, height),
      area,
      bbox: { x0, y0, x1, y1 },
      fill,
      solidity,
    });
  }
  objects.sort((a, b) => a.bbox.x0 + a.bbox.x1 - (b.bbox.x0 + b.bbox.x1));
  return { background: COLOURS[bg], objects };
}

// ---------------------------------------------------------------------------------------------------------------
// Scoring against ground truth

export type Attribute = "background" | "colour" | "shape" | "size" | "position";
export const ATTRIBUTES: Attribute[] = ["background", "colour", "shape", "size", "position"];

export interface Score {
  /** attribute -> [expected, got] pairs (got "none" when the object was not found). */
  pairs: Record<Attribute, [string, string][]>;
  /** Two-object prompts: both objects with the right colour, shape and position, and exactly two objects found. */
  twoObject?: boolean;
  /** Number of objects found vs expected. */
  count: [number, number];
}

/**
 * Matches expected objects to detected ones: one expected object -> the largest detection; two -> the two largest
 * detections, ordered left to right.
 */
export function scoreReading(expected: Scene, got: Reading): Score {
  const pairs: Score["pairs"] = { background: [], colour: [], shape: [], size: [], position: [] };
  pairs.background.push([expected.background, got.background]);
  const k = expected.objects.length;
  const chosen = [...got.objects]
    .sort((a, b) => b.area - a.area)
    .slice(0, k)
    .sort((a, b) => a.bbox.x0 + a.bbox.x1 - (b.bbox.x0 + b.bbox.x1));
  let allRight = chosen.length === k && got.objects.length === k;
  expected.objects.forEach((e, i) => {
    const d = chosen[i];
    for (const a of ["colour", "shape", "size", "position"] as const) pairs[a].push([e[a], d ? d[a] : "none"]);
    if (!d || d.colour !== e.colour || d.shape !== e.shape || d.position !== e.position) allRight = false;
  });
  return { pairs, twoObject: k === 2 ? allRight : undefined, count: [got.objects.length, k] };
}

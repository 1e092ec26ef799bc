/**
 * Scenes of the synthetic visual-counting task: coloured shapes on a grid of 28-pixel cells, a counting question
 * about them, and the integer answer.
 *
 * Layout. An image of S×S pixels (S a multiple of 28) is a (S/28)×(S/28) grid of cells. 28 pixels is one merged
 * vision token of Qwen2.5-VL (patch 14, merge 2), so each token sees exactly one cell; every object is drawn
 * inside one cell (small or large, jittered within the cell). "Some overlapping": in a few scenes two small
 * objects share a cell and overlap ('pair'), or a large object is pushed over the border into a neighbouring
 * cell ('shift'). Every object's centre stays visible (no later object covers it), which the generator checks.
 *
 * Attributes. Colours red, green, blue, yellow; shapes circle, square, triangle: 12 colour×shape combinations,
 * split CLEVR-CoGenT style into two conditions by parity (colour index + shape index even ⇒ A):
 *
 *   condition A (training, in-distribution test): red circle, red triangle, green square,
 *                                                  blue circle, blue triangle, yellow square
 *   condition B (held out, OOD test):              red square, green circle, green triangle,
 *                                                  blue square, yellow circle, yellow triangle
 *
 * Every colour and every shape occurs in both conditions, only their combinations differ: a model that learned
 * "red" and "square" separately can count red squares, one that learned the six A pairs as wholes cannot.
 *
 * Questions: "How many {color} objects are there?", "How many {shape}s are there?", "How many {color} {shape}s
 * are there?", "How many objects are there?". A scene is built from its question: the answer k is drawn first
 * (uniform over the split's count range), then k objects that match and a few distractors that do not (other
 * colours, other shapes, or near misses of the colour-shape pair), all from the split's allowed combinations.
 *
 * Everything is deterministic: {@link Rng} is a seeded sfc32 generator, keyed by strings (seed, split, index).
 */

/** Object colours, in the order that defines the A/B parity. */
export const COLORS = ['red', 'green', 'blue', 'yellow'] as const;
/** Object shapes, in the order that defines the A/B parity. */
export const SHAPES = ['circle', 'square', 'triangle'] as const;

export type Color = (typeof COLORS)[number];
export type Shape = (typeof SHAPES)[number];
export type Rgb = [number, number, number];
/** CoGenT-style condition of a colour×shape combination. */
export type Condition = 'A' | 'B';

/** Nominal RGB of each colour (objects get ±{@link COLOR_JITTER} per channel). */
export const COLOR_RGB: Readonly<Record<Color, Rgb>> = Object.freeze({
  red: [215, 45, 45],
  green: [45, 160, 70],
  blue: [50, 90, 215],
  yellow: [235, 195, 35],
});

/** Largest per-channel deviation of an object's colour from {@link COLOR_RGB}. */
export const COLOR_JITTER = 12;

/** Pixels per grid cell: one merged vision token (patch 14 × merge 2). */
export const CELL = 28;

export interface Combo {
  color: Color;
  shape: Shape;
}

/** The condition of a combination: A when colour index + shape index is even. */
export function comboCondition(color: Color, shape: Shape): Condition {
  return (COLORS.indexOf(color) + SHAPES.indexOf(shape)) % 2 === 0 ? 'A' : 'B';
}

/** All 12 combinations, colour-major. */
export const ALL_COMBOS: readonly Combo[] = Object.freeze(COLORS.flatMap((color) => SHAPES.map((shape) => ({ color, shape }))));
/** The combinations of condition A (training and in-distribution test). */
export const CONDITION_A: readonly Combo[] = Object.freeze(ALL_COMBOS.filter((c) => comboCondition(c.color, c.shape) === 'A'));
/** The combinations of condition B (held out of training; the OOD test uses only these). */
export const CONDITION_B: readonly Combo[] = Object.freeze(ALL_COMBOS.filter((c) => comboCondition(c.color, c.shape) === 'B'));

export function comboName(c: Combo): string {
  return `${c.color} ${c.shape}`;
}

// ---- deterministic random numbers -------------------------------------------------------------------------

/** cyrb128: a string → four 32-bit words (seeds sfc32). */
function hash128(s: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < s.length; i++) {
    const k = s.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/**
 * A small seeded PRNG (sfc32, 128-bit state). `Rng.fromKey('counting', seed, 'train', i)` gives an independent
 * stream per key, so example i of a split does not depend on how many examples are generated.
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | undefined;

  constructor(a: number, b: number, c: number, d: number) {
    this.#a = a >>> 0;
    this.#b = b >>> 0;
    this.#c = c >>> 0;
    this.#d = d >>> 0;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** A stream keyed by the parts (joined with '/'). */
  static fromKey(...parts: (string | number)[]): Rng {
    const [a, b, c, d] = hash128(parts.map(String).join('/'));
    return new Rng(a, b, c, d);
  }

  uint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  float(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi < lo) throw new RangeError(`Rng.int: need integers lo ≤ hi, got ${lo}, ${hi}`);
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick: empty list');
    return items[Math.floor(this.float() * items.length)]!;
  }

  /** Fisher–Yates shuffle of a copy. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.float() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare;
      this.#spare = undefined;
      return s;
    }
    let u = this.float();
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

// ---- questions ----------------------------------------------------------------------------------------------

/** color: "How many red objects are there?"; shape: "How many circles …"; color_shape: "How many red circles …"; total. */
export type QuestionKind = 'color' | 'shape' | 'color_shape' | 'total';
export const QUESTION_KINDS: readonly QuestionKind[] = ['color', 'shape', 'color_shape', 'total'];

export interface CountingQuestion {
  kind: QuestionKind;
  color?: Color;
  shape?: Shape;
}

/** The question sentence. */
export function questionText(q: CountingQuestion): string {
  switch (q.kind) {
    case 'color':
      return `How many ${q.color} objects are there?`;
    case 'shape':
      return `How many ${q.shape}s are there?`;
    case 'color_shape':
      return `How many ${q.color} ${q.shape}s are there?`;
    case 'total':
      return 'How many objects are there?';
  }
}

/** Whether an object with this colour and shape is counted by the question. */
export function matchesQuestion(q: CountingQuestion, o: Combo): boolean {
  return (q.color === undefined || q.color === o.color) && (q.shape === undefined || q.shape === o.shape);
}

/** Number of objects the question counts. */
export function countMatches(q: CountingQuestion, objects: readonly Combo[]): number {
  let n = 0;
  for (const o of objects) if (matchesQuestion(q, o)) n++;
  return n;
}

/** Every question the attribute sets allow (4 colour + 3 shape + 12 colour-shape + 1 total). */
export function allQuestions(): CountingQuestion[] {
  return [
    ...COLORS.map((color): CountingQuestion => ({ kind: 'color', color })),
    ...SHAPES.map((shape): CountingQuestion => ({ kind: 'shape', shape })),
    ...ALL_COMBOS.map((c): CountingQuestion => ({ kind: 'color_shape', color: c.color, shape: c.shape })),
    { kind: 'total' },
  ];
}

/** What the question counts, singular or plural: "red object(s)", "circle(s)", "red circle(s)", "object(s)". */
export function countedNoun(q: CountingQuestion, n: number): string {
  const one = n === 1;
  switch (q.kind) {
    case 'color':
      return `${q.color} ${one ? 'object' : 'objects'}`;
    case 'shape':
      return one ? q.shape! : `${q.shape}s`;
    case 'color_shape':
      return `${q.color} ${one ? q.shape : `${q.shape}s`}`;
    case 'total':
      return one ? 'object' : 'objects';
  }
}

/**
 * A short correct completion in the R1 format, e.g. `<think>I see 3 red objects.</think><answer>3</answer>`:
 * a ready-made warm-start target and part of the tokenizer's corpus.
 */
export function countingCompletion(q: CountingQuestion, n: number): string {
  return `<think>I see ${n} ${countedNoun(q, n)}.</think><answer>${n}</answer>`;
}

// ---- scenes -------------------------------------------------------------------------------------------------

export type ObjectSize = 'small' | 'large';

/** One drawn object. Objects are drawn in list order (later ones on top). */
export interface SceneObject {
  shape: Shape;
  color: Color;
  size: ObjectSize;
  /** The colour actually drawn (COLOR_RGB[color] with jitter). */
  rgb: Rgb;
  /** Centre in pixels: circle/square centre, triangle centroid. */
  cx: number;
  cy: number;
  /** Radius: circle radius, square half-side / 0.9, triangle circumradius / 1.2. */
  r: number;
  /** [row, column] of the cell the object belongs to. */
  cell: [number, number];
}

/** Background: a linear gradient between two light colours along `angle` degrees. */
export interface SceneBackground {
  from: Rgb;
  to: Rgb;
  angle: number;
}

/** How the scene overlaps objects: none, two small objects in one cell, or a large one pushed into a neighbour. */
export type OverlapKind = 'none' | 'pair' | 'shift';

export interface Scene {
  width: number;
  height: number;
  /** Cells per side. */
  grid: number;
  background: SceneBackground;
  objects: SceneObject[];
  question: CountingQuestion;
  /** Number of objects the question counts. */
  answer: number;
  overlap: OverlapKind;
}

/** What a split draws from. */
export interface SceneSamplingOptions {
  /** Image side in pixels: a multiple of 28, at least 84. */
  imageSize: number;
  /** Colour×shape combinations objects may have. */
  combos: readonly Combo[];
  /** Inclusive range of answers. */
  countRange: readonly [number, number];
  /** Share of scenes with overlapping objects. Default 0.15. */
  overlapProbability?: number;
}

const LIGHT_BACKGROUNDS: readonly Rgb[] = [
  [246, 246, 246],
  [236, 236, 230],
  [250, 241, 226],
  [230, 238, 246],
  [242, 232, 242],
  [232, 245, 235],
  [226, 228, 230],
  [248, 247, 234],
];

const SQUARE_HALF = 0.9;
const TRIANGLE_CIRCUM = 1.2;

/** Half-extent of an object's bounding box: [left/right, up, down] relative to its centre. */
function extent(shape: Shape, r: number): [number, number, number] {
  if (shape === 'circle') return [r, r, r];
  if (shape === 'square') return [SQUARE_HALF * r, SQUARE_HALF * r, SQUARE_HALF * r];
  const R = TRIANGLE_CIRCUM * r;
  return [R * Math.sin(Math.PI / 3), R, R / 2];
}

/** Vertices of the triangle (pointing up) with centroid (cx, cy) and radius r. */
export function triangleVertices(cx: number, cy: number, r: number): [number, number][] {
  const R = TRIANGLE_CIRCUM * r;
  const dx = R * Math.sin(Math.PI / 3);
  return [
    [cx, cy - R],
    [cx + dx, cy + R / 2],
    [cx - dx, cy + R / 2],
  ];
}

/** Half-side of a square object of radius r. */
export function squareHalfSide(r: number): number {
  return SQUARE_HALF * r;
}

/** Whether the point (x, y) lies inside the object's shape (boundary included). */
export function objectContains(o: Pick<SceneObject, 'shape' | 'cx' | 'cy' | 'r'>, x: number, y: number): boolean {
  const dx = x - o.cx;
  const dy = y - o.cy;
  if (o.shape === 'circle') return dx * dx + dy * dy <= o.r * o.r;
  if (o.shape === 'square') {
    const h = squareHalfSide(o.r);
    return Math.abs(dx) <= h && Math.abs(dy) <= h;
  }
  const v = triangleVertices(o.cx, o.cy, o.r);
  const side = (a: [number, number], b: [number, number]): number => (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
  const s0 = side(v[0]!, v[1]!);
  const s1 = side(v[1]!, v[2]!);
  const s2 = side(v[2]!, v[0]!);
  return (s0 >= 0 && s1 >= 0 && s2 >= 0) || (s0 <= 0 && s1 <= 0 && s2 <= 0);
}

/** Margin (pixels) around an object's centre that no later object may cover: the centre pixel stays pure. */
export const CENTRE_MARGIN = 1.5;

/** Whether `top` covers any point within `margin` (Chebyshev) of `o`'s centre. */
function coversCentre(top: Pick<SceneObject, 'shape' | 'cx' | 'cy' | 'r'>, o: Pick<SceneObject, 'cx' | 'cy'>, margin: number): boolean {
  for (const dy of [-margin, 0, margin]) {
    for (const dx of [-margin, 0, margin]) if (objectContains(top, o.cx + dx, o.cy + dy)) return true;
  }
  return false;
}

/** Whether every object's centre is visible: no object drawn after it covers its centre ± {@link CENTRE_MARGIN}. */
export function centresVisible(objects: readonly SceneObject[]): boolean {
  for (let i = 0; i < objects.length; i++) {
    const o = objects[i]!;
    for (let j = i + 1; j < objects.length; j++) if (coversCentre(objects[j]!, o, CENTRE_MARGIN)) return false;
  }
  return true;
}

function jitterColor(rng: Rng, base: Rgb, amount: number): Rgb {
  return base.map((v) => Math.max(0, Math.min(255, v + rng.int(-amount, amount)))) as Rgb;
}

/** Round to 2 decimals so the SVG text (and the stored scene) is exact and stable. */
function r2(v: number): number {
  return Math.round(v * 100) / 100;
}

function radiusFor(rng: Rng, size: ObjectSize): number {
  return r2(size === 'small' ? rng.uniform(5.5, 7.5) : rng.uniform(9.5, 11));
}

/** Place an object of this shape and radius inside cell (row, col), jittered while staying 1 px inside the cell. */
function placeInCell(rng: Rng, shape: Shape, r: number, row: number, col: number): { cx: number; cy: number } {
  const [hx, up, down] = extent(shape, r);
  const x0 = col * CELL + CELL / 2;
  const y0 = row * CELL + CELL / 2;
  const roomX = Math.max(0, CELL / 2 - 1 - hx);
  const roomUp = Math.max(0, CELL / 2 - 1 - up);
  const roomDown = Math.max(0, CELL / 2 - 1 - down);
  return { cx: r2(x0 + rng.uniform(-roomX, roomX)), cy: r2(y0 + rng.uniform(-roomUp, roomDown)) };
}

/** Validate an image size for scenes: a multiple of 28, between 84 and 448. Returns the cells per side. */
export function gridForImageSize(imageSize: number): number {
  if (!Number.isSafeInteger(imageSize) || imageSize % CELL !== 0 || imageSize < 3 * CELL || imageSize > 16 * CELL) {
    throw new RangeError(`imageSize must be a multiple of ${CELL} between ${3 * CELL} and ${16 * CELL} pixels (one object per ${CELL}-pixel cell), got ${imageSize}`);
  }
  return imageSize / CELL;
}

/** Combinations allowed for the question's matches and its distractors. */
function questionPools(q: CountingQuestion, combos: readonly Combo[]): { match: Combo[]; other: Combo[] } {
  const match = combos.filter((c) => matchesQuestion(q, c));
  const other = combos.filter((c) => !matchesQuestion(q, c));
  return { match, other };
}

/** The questions a split can ask: those with at least one matching allowed combination. */
export function questionsFor(combos: readonly Combo[]): CountingQuestion[] {
  return allQuestions().filter((q) => combos.some((c) => matchesQuestion(q, c)));
}

/**
 * Sample one scene (see the module comment): kind, then question target, then answer k, then k matching objects
 * and distractors, cells, sizes, overlap and background. Throws RangeError for impossible options.
 */
export function sampleScene(rng: Rng, options: SceneSamplingOptions): Scene {
  const grid = gridForImageSize(options.imageSize);
  const cells = grid * grid;
  const [kMin, kMax] = options.countRange;
  if (!Number.isSafeInteger(kMin) || !Number.isSafeInteger(kMax) || kMin < 0 || kMax < kMin || kMax > cells) {
    throw new RangeError(`countRange must be integers 0 ≤ min ≤ max ≤ ${cells} (cells of a ${options.imageSize}-pixel image), got [${kMin}, ${kMax}]`);
  }
  if (options.combos.length === 0) throw new RangeError('combos must not be empty');
  const pOverlap = options.overlapProbability ?? 0.15;
  const maxObjects = Math.min(cells, kMax + 3);

  // Question: kind uniformly, then a target among those the combos allow.
  const questions = questionsFor(options.combos);
  const kinds = QUESTION_KINDS.filter((k) => questions.some((q) => q.kind === k));
  const kind = rng.pick(kinds);
  const question = rng.pick(questions.filter((q) => q.kind === kind));
  const { match, other } = questionPools(question, options.combos);

  const k = rng.int(kMin, kMax);
  let d = 0;
  if (other.length > 0) {
    const dMax = Math.min(4, maxObjects - k);
    const dMin = k === 0 ? Math.min(1, dMax) : 0;
    d = rng.int(dMin, Math.max(dMin, dMax));
  }
  const combos: Combo[] = [];
  for (let i = 0; i < k; i++) combos.push(rng.pick(match));
  for (let i = 0; i < d; i++) combos.push(rng.pick(other));
  const order = rng.shuffle(combos);

  const cellOrder = rng.shuffle(Array.from({ length: cells }, (_, i) => i));
  const objects: SceneObject[] = order.map((c, i) => {
    const cellIdx = cellOrder[i]!;
    const row = Math.floor(cellIdx / grid);
    const col = cellIdx % grid;
    const size: ObjectSize = rng.float() < 0.5 ? 'small' : 'large';
    const r = radiusFor(rng, size);
    const { cx, cy } = placeInCell(rng, c.shape, r, row, col);
    return { shape: c.shape, color: c.color, size, rgb: jitterColor(rng, COLOR_RGB[c.color], COLOR_JITTER), cx, cy, r, cell: [row, col] };
  });

  let overlap: OverlapKind = 'none';
  if (objects.length > 0 && rng.float() < pOverlap) {
    const before = objects.map((o) => ({ ...o, cell: [...o.cell] as [number, number] }));
    const mode: OverlapKind = objects.length >= 2 && rng.float() < 0.5 ? 'pair' : 'shift';
    if (mode === 'pair') {
      // The last object moves into the first one's cell, both small, on a line through the cell centre (one of 8
      // directions): as close as possible while the lower one's centre stays outside the upper one, so they overlap
      // but both centres remain visible.
      const a = objects[0]!;
      const b = objects[objects.length - 1]!;
      const [row, col] = a.cell;
      const x0 = col * CELL + CELL / 2;
      const y0 = row * CELL + CELL / 2;
      const [ux, uy] = rng.pick([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]] as const);
      const norm = Math.hypot(ux, uy);
      for (const o of [a, b]) {
        o.size = 'small';
        o.r = r2(rng.uniform(5.5, 6.5));
        o.cell = [row, col];
      }
      for (let dist = 2; dist <= 16; dist += 0.5) {
        const h = dist / 2 / norm;
        a.cx = r2(x0 - h * ux);
        a.cy = r2(y0 - h * uy);
        b.cx = r2(x0 + h * ux);
        b.cy = r2(y0 + h * uy);
        if (!coversCentre(b, a, CENTRE_MARGIN)) break;
      }
      overlap = 'pair';
    } else {
      // A large object pushed 7 px toward a neighbouring cell: it crosses the border by about 3–5 px.
      const o = objects[rng.int(0, objects.length - 1)]!;
      const [row, col] = o.cell;
      const dirs = ([[0, 1], [0, -1], [1, 0], [-1, 0]] as const).filter(([dr, dc]) => row + dr >= 0 && row + dr < grid && col + dc >= 0 && col + dc < grid);
      const [dr, dc] = rng.pick(dirs);
      o.size = 'large';
      o.r = r2(rng.uniform(9.5, 10.5));
      o.cx = col * CELL + CELL / 2 + dc * 7;
      o.cy = row * CELL + CELL / 2 + dr * 7;
      overlap = 'shift';
    }
    // Rarely (a pushed triangle's tip reaching a neighbour's centre) the overlap would hide a centre: undo it.
    if (!centresVisible(objects)) {
      objects.splice(0, objects.length, ...before);
      overlap = 'none';
    }
  }

  const bgA = rng.pick(LIGHT_BACKGROUNDS);
  const bgB = rng.pick(LIGHT_BACKGROUNDS);
  const background: SceneBackground = { from: jitterColor(rng, bgA, 4), to: jitterColor(rng, bgB, 4), angle: rng.int(0, 359) };
  const answer = countMatches(question, objects);
  if (answer !== k) throw new Error(`sampleScene: counted ${answer} objects for an intended ${k} (generator bug)`);
  return { width: options.imageSize, height: options.imageSize, grid, background, objects, question, answer, overlap };
}

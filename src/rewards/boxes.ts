/**
 * Bounding-box parsing from completions and ground truths.
 *
 * Peers (peers.md §b.0, §b.2–b.4): every peer parses predicted boxes with `\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]`
 * (non-negative INTEGERS only: `[10.5, 20, 30, 40]` scores 0, VLM-R1#82) from the FIRST `<answer>` span, and
 * reads ground truths with `json.loads` (VLM-R1) or Python `eval()` (Ocean-R1, OpenV-R1).
 *
 * Our rules (deliberate):
 * - Boxes come from the compared text (answer.ts: the LAST `<answer>` span). First from Qwen2.5-VL's JSON form —
 *   any object carrying `bbox_2d` (or `bbox`/`box`) with four numbers, at any nesting depth, inside or outside
 *   ```json fences, with single quotes or trailing commas tolerated, labels kept — and only when none is found,
 *   from bare `[x1, y1, x2, y2]` lists. Coordinates may be integers or decimals, signed.
 * - A box is valid when all four numbers are finite and x2 > x1, y2 > y1; invalid boxes are kept in order (so
 *   "the first box" stays the first one the model wrote) and score 0 downstream.
 * - Ground truths are parsed without eval(): a 4-number array, an array of those, objects with `bbox_2d`/`bbox`,
 *   or a string holding any of these (with or without `<answer>` tags).
 * Parsing is linear in the text length and never throws.
 */
import { groundTruthText } from './answer.js';

/** [x1, y1, x2, y2] in pixels, (x1, y1) top-left, (x2, y2) bottom-right (exclusive corner). */
export type Box = [number, number, number, number];

export interface ParsedBox {
  box: Box;
  label?: string;
}

const NUM = String.raw`[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?`;
const QUAD = new RegExp(String.raw`\[\s*(${NUM})\s*,\s*(${NUM})\s*,\s*(${NUM})\s*,\s*(${NUM})\s*\]`, 'g');
const BOX_KEY = String.raw`["']?(?:bbox_2d|bbox|box)["']?\s*:\s*`;
const KEYED_QUAD = new RegExp(
  BOX_KEY + String.raw`\[\s*(${NUM})\s*,\s*(${NUM})\s*,\s*(${NUM})\s*,\s*(${NUM})\s*\]`,
);
const LABEL = /["']?label["']?\s*:\s*["']([^"']*)["']/;

/** Whether the box has finite coordinates and positive width and height. */
export function isValidBox(b: readonly number[]): b is Box {
  return (
    b.length === 4 &&
    b.every((v) => typeof v === 'number' && Number.isFinite(v)) &&
    (b[2] as number) > (b[0] as number) &&
    (b[3] as number) > (b[1] as number)
  );
}

/** Four finite numbers (numbers or numeric strings) as a Box, else undefined. Does not check validity. */
function asQuad(v: unknown): Box | undefined {
  if (!Array.isArray(v) || v.length !== 4) return undefined;
  const nums = v.map((x) => (typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' ? Number(x) : NaN));
  return nums.every((x) => Number.isFinite(x)) ? (nums as Box) : undefined;
}

/** Collects every object with a box key from a parsed JSON value, in document order. */
function collectFromJson(value: unknown, out: ParsedBox[], depth = 0): void {
  if (depth > 32 || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const v of value) collectFromJson(v, out, depth + 1);
    return;
  }
  const obj = value as Record<string, unknown>;
  const quad = asQuad(obj['bbox_2d'] ?? obj['bbox'] ?? obj['box']);
  if (quad) {
    const label = obj['label'];
    out.push(typeof label === 'string' ? { box: quad, label } : { box: quad });
    return;
  }
  for (const v of Object.values(obj)) collectFromJson(v, out, depth + 1);
}

/** Maximal balanced `{…}` spans, in order (one pass with a stack; unbalanced braces are ignored). */
function objectSpans(text: string): Array<[number, number]> {
  const stack: number[] = [];
  const spans: Array<[number, number]> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 123 /* { */) stack.push(i);
    else if (c === 125 /* } */ && stack.length > 0) {
      const start = stack.pop() as number;
      while (spans.length > 0 && (spans[spans.length - 1] as [number, number])[0] > start) spans.pop();
      spans.push([start, i + 1]);
    }
  }
  return spans;
}

function tryJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    /* fall through to the repaired text */
  }
  let repaired = s.replace(/,\s*([}\]])/g, '$1');
  if (!repaired.includes('"')) repaired = repaired.replace(/'/g, '"');
  try {
    return JSON.parse(repaired);
  } catch {
    return undefined;
  }
}

/** Boxes from JSON objects in the text (see the rules at the top of this file). */
function jsonBoxes(text: string): ParsedBox[] {
  const out: ParsedBox[] = [];
  for (const [start, end] of objectSpans(text)) {
    let span = text.slice(start, end);
    const found: ParsedBox[] = [];
    const parsed = tryJson(span);
    if (parsed !== undefined) collectFromJson(parsed, found);
    if (found.length === 0) {
      // Malformed JSON: read keyed quads object by object.
      span = span.slice(1, -1);
      for (const part of span.split(/\}\s*,?\s*\{/)) {
        const m = KEYED_QUAD.exec(part);
        if (!m) continue;
        const box = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] as Box;
        const label = LABEL.exec(part)?.[1];
        found.push(label === undefined ? { box } : { box, label });
      }
    }
    out.push(...found);
  }
  return out;
}

/**
 * Every box in a text, in order: JSON `bbox_2d` objects when there are any, else bare `[x1, y1, x2, y2]` lists.
 * Invalid boxes (x2 ≤ x1, …) are included; check with isValidBox. Never throws.
 */
export function parseBoxes(text: string): ParsedBox[] {
  if (typeof text !== 'string' || text.length === 0) return [];
  const s = text.replace(/```(?:json)?/gi, ' ');
  const fromJson = jsonBoxes(s);
  if (fromJson.length > 0) return fromJson;
  const out: ParsedBox[] = [];
  for (const m of s.matchAll(QUAD)) out.push({ box: [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] });
  return out;
}

/** Ground-truth boxes from any supported form (see the top of this file). Never throws. */
export function groundTruthBoxes(groundTruth: unknown): ParsedBox[] {
  if (groundTruth === null || groundTruth === undefined) return [];
  if (typeof groundTruth === 'string') return parseBoxes(groundTruthText(groundTruth));
  const quad = asQuad(groundTruth);
  if (quad) return [{ box: quad }];
  if (typeof groundTruth === 'object') {
    const out: ParsedBox[] = [];
    if (Array.isArray(groundTruth)) {
      for (const item of groundTruth) {
        const q = asQuad(item);
        if (q) out.push({ box: q });
        else out.push(...groundTruthBoxes(item));
      }
    } else collectFromJson(groundTruth, out);
    return out;
  }
  return [];
}

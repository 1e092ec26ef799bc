/**
 * Qwen3-VL video prompt text (HF transformers Qwen3VLProcessor): a video is not one vision_start … video_pad run
 * but one run per temporal grid step, each behind its timestamp text:
 *
 *   for each step k < t:  "<{ts[k]:.1f} seconds>" + "<|vision_start|>" + "<|video_pad|>" × (h·w / merge²) + "<|vision_end|>"
 *
 * The placeholder replaces the template's "<|vision_start|><|video_pad|><|vision_end|>" (first occurrence per video,
 * in order), or a bare "<|video_pad|>" when the text has no such triple (as HF does for prompts written by hand).
 * Timestamps (HF `_calculate_timestamps`): the source times of the sampled frames (frame index / source fps), padded
 * to a multiple of temporal_patch_size by repeating the last, then per group of temporal_patch_size frames the mean of
 * the group's first and last time. The text is then tokenized as a whole, as HF tokenizes the expanded prompt.
 */

export const VISION_START = '<|vision_start|>';
export const VISION_END = '<|vision_end|>';
export const VIDEO_PAD = '<|video_pad|>';

/** One timestamp (seconds) per temporal grid step: HF Qwen3VLProcessor._calculate_timestamps. */
export function qwen3VideoTimestamps(frameTimes: readonly number[], temporalPatchSize: number): number[] {
  if (!Number.isSafeInteger(temporalPatchSize) || temporalPatchSize < 1) {
    throw new RangeError(`qwen3VideoTimestamps: temporalPatchSize must be a positive integer, got ${temporalPatchSize}`);
  }
  if (frameTimes.length === 0) throw new RangeError('qwen3VideoTimestamps: frameTimes is empty');
  const bad = frameTimes.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v) || v < 0);
  if (bad >= 0) throw new RangeError(`qwen3VideoTimestamps: frameTimes[${bad}] is ${frameTimes[bad]}; expected a finite number ≥ 0`);
  const ts = [...frameTimes];
  while (ts.length % temporalPatchSize !== 0) ts.push(ts[ts.length - 1]!);
  const out: number[] = [];
  for (let i = 0; i < ts.length; i += temporalPatchSize) out.push((ts[i]! + ts[i + temporalPatchSize - 1]!) / 2);
  return out;
}

/**
 * Python's `f"{x:.1f}"` for x ≥ 0: correctly rounded to one decimal, ties (exactly representable halves such as 0.25)
 * to even. JS toFixed rounds ties up, so the ties are decided here: x·10 ends in exactly .5 only when 4x is an odd
 * integer (a decimal tie m/20 is a binary fraction only when the denominator reduces to 4).
 */
export function formatSeconds(x: number): string {
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`formatSeconds: expected a finite number ≥ 0, got ${x}`);
  const q = x * 4;  // exact
  if (Number.isInteger(q) && q % 2 === 1) {
    const lo = Math.floor(x * 10);  // x·10 = 2.5·q, exact for these magnitudes
    const n = lo % 2 === 0 ? lo : lo + 1;
    return `${Math.floor(n / 10)}.${n % 10}`;
  }
  return x.toFixed(1);
}

/** The prompt text of one Qwen3-VL video of grid [t, h, w] with the given per-step timestamps. */
export function qwen3VideoPlaceholder(grid: readonly [number, number, number], timestamps: readonly number[], mergeSize: number): string {
  const [t, h, w] = grid;
  if (timestamps.length !== t) throw new RangeError(`qwen3VideoPlaceholder: ${timestamps.length} timestamps for a video grid with t = ${t}`);
  if (h % mergeSize !== 0 || w % mergeSize !== 0) throw new RangeError(`qwen3VideoPlaceholder: grid [${t}, ${h}, ${w}] is not divisible by merge size ${mergeSize}`);
  const run = VISION_START + VIDEO_PAD.repeat((h * w) / (mergeSize * mergeSize)) + VISION_END;
  let s = '';
  for (let k = 0; k < t; k++) s += `<${formatSeconds(timestamps[k]!)} seconds>` + run;
  return s;
}

/**
 * Replaces each video's placeholder in the rendered prompt (in order) by its Qwen3-VL text. Throws RangeError when
 * the text holds fewer video placeholders than videos, or more.
 */
export function expandQwen3VideoText(
  text: string,
  videos: readonly { grid: readonly [number, number, number]; timestamps: readonly number[] }[],
  mergeSize: number,
): string {
  const triple = VISION_START + VIDEO_PAD + VISION_END;
  let out = '';
  let rest = text;
  videos.forEach((v, i) => {
    const placeholder = qwen3VideoPlaceholder(v.grid, v.timestamps, mergeSize);
    let at = rest.indexOf(triple);
    let len = triple.length;
    if (at < 0) {
      at = rest.indexOf(VIDEO_PAD);
      len = VIDEO_PAD.length;
    }
    if (at < 0) throw new RangeError(`expandQwen3VideoText: ${videos.length} videos given but the prompt holds only ${i} video placeholders`);
    out += rest.slice(0, at) + placeholder;
    rest = rest.slice(at + len);
  });
  if (rest.includes(VIDEO_PAD)) throw new RangeError(`expandQwen3VideoText: the prompt holds more video placeholders than the ${videos.length} videos given`);
  return out + rest;
}

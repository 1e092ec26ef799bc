/**
 * Learning-rate schedules with linear warm-up, as HF transformers' get_{constant,linear,cosine}_schedule_with_warmup:
 * step s (0-based, the optimizer step about to be taken) of `total`:
 *   warm-up (s < warmup): lr · s / warmup   (HF starts at 0)
 *   constant: lr;  linear: lr · (total − s) / (total − warmup);  cosine: lr · ½(1 + cos(π · (s − warmup)/(total − warmup)))
 */
export type LrSchedule = 'constant' | 'linear' | 'cosine';

export function learningRate(schedule: LrSchedule, baseLr: number, step: number, total: number, warmup: number): number {
  if (warmup > 0 && step < warmup) return (baseLr * step) / warmup;
  if (schedule === 'constant') return baseLr;
  const span = Math.max(1, total - warmup);
  const progress = Math.min(1, Math.max(0, (step - warmup) / span));
  if (schedule === 'linear') return baseLr * Math.max(0, 1 - progress);
  return baseLr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

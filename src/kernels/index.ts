/**
 * The `kernels` namespace: single CPU kernels on typed arrays, for tests, benchmarks and embedding.
 * One module per kernel group; this file only re-exports them.
 */
export { gemm, linear, linearBackward } from './gemm.js';
export type { GemmInput } from './gemm.js';
export { attention, attentionBackward, attentionNaive, attentionNaiveBackward } from './attention.js';
export type { AttentionInput, AttentionOutput, AttentionBackwardInput, AttentionGradients } from './attention.js';
export { grpoLoss, KL_ESTIMATORS, LOSS_AGG_MODES, RATIO_LEVELS } from './grpo.js';
export type { GrpoLossInput, GrpoLossResult, GrpoLossStats, KlEstimator, LossAgg, RatioLevel } from './grpo.js';
export { adamwStep, clipGradNorm } from './optim.js';
export type { AdamWStepInput, ClipGradNormInput, ClipGradNormResult } from './optim.js';
export { logprobs, logprobsBackward } from './logprob.js';
export type { LogprobsInput, LogprobsResult, LogprobsBackwardInput, LogprobsGradients } from './logprob.js';
export { sample } from './sampling.js';
export type { SampleInput, SampleResult } from './sampling.js';
export {
  rmsNorm, rmsNormBackward, layerNorm, layerNormBackward, rope, ropeTables, ropeApply, ROPE_KINDS, swiglu, swigluBackward,
  gelu, geluBackward, quickGelu, quickGeluBackward,
} from './layers.js';
export type {
  RmsNormInput, RmsNormBackwardInput, LayerNormInput, LayerNormBackwardInput, RopeKind, RopeSpec, RopeInput, RopeApplyInput,
  SwigluInput, GeluApproximate,
} from './layers.js';

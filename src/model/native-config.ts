/** The flat native model description, from the validated ModelConfig (src/model/config.ts). */
import type { NativeModelConfig } from '../native/binding.js';
import type { ModelConfig } from './config.js';

export function nativeModelConfig(c: ModelConfig): NativeModelConfig {
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    numLayers: c.numHiddenLayers,
    numHeads: c.numAttentionHeads,
    numKvHeads: c.numKeyValueHeads,
    headDim: c.headDim,
    intermediateSize: c.intermediateSize,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    mropeSection: [c.mropeSection[0], c.mropeSection[1], c.mropeSection[2]],
    mropeInterleaved: c.mropeInterleaved,
    attentionBias: c.attentionBias,
    qkNorm: c.qkNorm,
    tieWordEmbeddings: c.tieWordEmbeddings,
    imageTokenId: c.imageTokenId,
    videoTokenId: c.videoTokenId,
    visionStartTokenId: c.visionStartTokenId,
    visionEndTokenId: c.visionEndTokenId,
    vision: {
      kind: c.modelType,
      depth: c.visionDepth,
      hiddenSize: c.visionHiddenSize,
      numHeads: c.visionNumHeads,
      headDim: c.visionHeadDim,
      intermediateSize: c.visionIntermediateSize,
      patchSize: c.patchSize,
      temporalPatchSize: c.temporalPatchSize,
      mergeSize: c.spatialMergeSize,
      inChannels: c.inChannels,
      outHiddenSize: c.outHiddenSize,
      act: c.visionHiddenAct,
      eps: c.visionNormEps,
      windowSize: c.windowSize,
      fullAttBlocks: [...c.fullAttBlockIndexes],
      numPositionEmbeddings: c.numPositionEmbeddings,
      deepstackIndexes: [...c.deepstackVisualIndexes],
    },
  };
}

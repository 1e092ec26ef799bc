/** Data-parallel training: collectives, shard arithmetic and the ZeRO optimizer (the lead re-exports from src/index.ts). */
export { Communicator, type CommBackend, type CommunicatorOptions, type ReduceOpName } from './communicator.js';
export { shardCounts, shardRange } from './shard.js';
export { ZeroAdamW, type ZeroOptions, type ZeroStage } from './zero.js';

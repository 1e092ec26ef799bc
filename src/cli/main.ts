#!/usr/bin/env node
/** The vlm-grpo command line. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { VlmGrpoError } from '../errors.js';
import { packageRoot } from '../native/binding.js';
import { UsageError } from './args.js';
import { dataCommand } from './data.js';
import { demoCommand } from './demo.js';
import { runDoctor } from './doctor.js';
import { evalCommand } from './eval.js';
import { generateCommand } from './generate.js';
import { reportCommand } from './report.js';
import { sftCommand } from './sft.js';
import { trainCommand } from './train.js';

const HELP = `vlm-grpo — train vision-language models with GRPO on a native C++/CUDA core

Usage:
  vlm-grpo demo [--out DIR] [--seed N]                               the visual-counting demo: SFT warm start, GRPO, accuracy table
  vlm-grpo train --config run.yaml [--set key=value]... [--resume]   GRPO training
  vlm-grpo train --config run.yaml --nproc-per-node N [--nnodes M --node-rank R --master-addr A]   data-parallel GRPO
  vlm-grpo sft --config sft.yaml [--set key=value]... [--resume]     supervised fine-tuning (e.g. a warm start)
  vlm-grpo eval --model DIR --data FILE [--reward accuracy] [--samples K]   accuracy / pass@k of a model
  vlm-grpo generate --model DIR --prompt TEXT [--image PATH]...       generate completions
  vlm-grpo report RUN_DIR                                             write RUN_DIR/report.html
  vlm-grpo data synth-counting|init-model --out DIR [options]        demo counting data set / tiny Qwen2.5-VL model
  vlm-grpo doctor        print Node, OS, CPU features, threads, BLAS, CUDA and the loaded native build
  vlm-grpo --version     print the version
  vlm-grpo COMMAND --help   options of one command

Environment:
  VG_NUM_THREADS         threads for the CPU kernels (default: all hardware threads)
  VLM_GRPO_ADDON         load this .node file instead of build/Release/vlm_grpo.node
  RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
                         torchrun-style rendezvous of one rank (set by --nproc-per-node; see vlm-grpo train --help)
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  train: trainCommand,
  eval: evalCommand,
  generate: generateCommand,
  report: reportCommand,
  demo: demoCommand,
  data: dataCommand,
  sft: sftCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(HELP);
    return cmd === undefined ? 1 : 0;
  }
  if (cmd === '--version' || cmd === '-v') {
    console.log(version());
    return 0;
  }
  if (cmd === 'doctor') {
    if (rest.length) {
      console.error(`vlm-grpo doctor takes no arguments (got: ${rest.join(' ')})`);
      return 2;
    }
    return runDoctor();
  }
  const run = COMMANDS[cmd];
  if (!run) {
    console.error(`vlm-grpo: unknown command '${cmd}'. Run vlm-grpo --help for the list of commands.`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`vlm-grpo ${cmd}: ${err.message}`);
      return 2;
    }
    if (err instanceof VlmGrpoError) {
      console.error(`vlm-grpo ${cmd}: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));

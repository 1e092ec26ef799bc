#!/usr/bin/env node
/** The vlm-grpo command line. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../native/binding.js';
import { runDoctor } from './doctor.js';

const HELP = `vlm-grpo — train vision-language models with GRPO on a native C++/CUDA core

Usage:
  vlm-grpo doctor        print Node, OS, CPU features, threads, BLAS, CUDA and the loaded native build
  vlm-grpo --version     print the version
  vlm-grpo --help        print this help

Environment:
  VG_NUM_THREADS         threads for the CPU kernels (default: all hardware threads)
  VLM_GRPO_ADDON         load this .node file instead of build/Release/vlm_grpo.node
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export function main(argv: string[]): number {
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
  console.error(`vlm-grpo: unknown command '${cmd}'. Run vlm-grpo --help for the list of commands.`);
  return 2;
}

process.exitCode = main(process.argv.slice(2));

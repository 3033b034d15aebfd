#!/usr/bin/env node
// noma CLI, also installed as the kubectl plugin `kubectl noma` (bin kubectl-noma).
import { once } from 'node:events';
import { binName, runCli } from './program.js';

const code = await runCli(
  process.argv.slice(2),
  {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    cwd: process.cwd(),
    isTTY: process.stdout.isTTY,
    interrupted: once(process, 'SIGINT').then(() => undefined),
  },
  binName(process.argv[1]),
);
// Exit explicitly: a cluster that never answered (nodes --request-timeout) leaves a socket open.
process.exit(code);

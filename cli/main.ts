#!/usr/bin/env node
// noma CLI (also installed as the kubectl plugin `kubectl noma`).
import { VERSION } from '../shared/version.js';

const [command] = process.argv.slice(2);
if (command === '--version' || command === 'version') {
  console.log(VERSION);
} else {
  console.log(
    `noma ${VERSION}\n\nusage: noma <command>\n\ncommands:\n  version   print the version`,
  );
  if (command !== undefined && command !== '--help' && command !== 'help') process.exitCode = 2;
}

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Captured nvidia-smi outputs (agent/discovery/fixtures/), shared by unit and integration tests. */
export const FIXTURES_DIR = fileURLToPath(
  new URL('../../agent/discovery/fixtures/', import.meta.url),
);

/** The fake nvidia-smi; it prints the fixture named by NOMA_FAKE_NVIDIA_SMI_FIXTURE. */
export const FAKE_NVIDIA_SMI = `${FIXTURES_DIR}fake-nvidia-smi`;
export const FAKE_FIXTURE_ENV = 'NOMA_FAKE_NVIDIA_SMI_FIXTURE';

export function fixturePath(name: string): string {
  return `${FIXTURES_DIR}${name}`;
}

/** A fixture's stdout, without the `#!` directive lines that only the fake script reads. */
export function fixtureOutput(name: string): string {
  return readFileSync(fixturePath(name), 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('#! '))
    .join('\n');
}

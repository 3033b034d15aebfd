// `npm run helm -- <args>`: builds Helm if needed (tools/helm/helm.ts), then runs it with <args>.
import { spawnSync } from 'node:child_process';
import { ensureHelm } from './helm.js';

try {
  const helm = await ensureHelm();
  const result = spawnSync(helm, process.argv.slice(2), { stdio: 'inherit' });
  if (result.error) throw result.error;
  process.exitCode = result.status ?? 1;
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
}

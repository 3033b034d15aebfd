// Where the sandbox keeps its files: everything under .sandbox/ in the repository (ignored by
// git), the control plane's own directory included, so that it never touches the test cluster.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SandboxPaths } from './component-args.js';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const SANDBOX_DIR = process.env['NOMA_SANDBOX_DIR'] ?? join(ROOT, '.sandbox');
export const CLUSTER_DIR = join(SANDBOX_DIR, 'cluster');
export const FIXTURES_DIR = join(ROOT, 'agent', 'discovery', 'fixtures') + '/';
export const NOMA_NAMESPACE_FOR_SANDBOX = 'noma-system';

export const paths: SandboxPaths & {
  logs: string;
  rebootRequests: string;
  pids: string;
  linkTls: string;
} = {
  root: SANDBOX_DIR,
  logs: join(SANDBOX_DIR, 'logs'),
  rebootRequests: join(SANDBOX_DIR, 'reboot-requests'),
  pids: join(SANDBOX_DIR, 'children.json'),
  linkTls: join(SANDBOX_DIR, 'link-tls'),
  nodeDir: (node) => join(SANDBOX_DIR, 'nodes', node),
  rebootRequest: (node) => join(SANDBOX_DIR, 'reboot-requests', node),
  bootIdFile: (node) => join(SANDBOX_DIR, 'nodes', node, 'boot_id'),
};

// The chaos suite's own control plane (test/cluster, in .cluster/chaos unless
// NOMA_CHAOS_CLUSTER_DIR says otherwise): the suite stops its API server, which nobody else's
// tests may live through. Started here (or reused), the CRD installed, stopped at the end unless
// it was running before or NOMA_KEEP_CLUSTER=1.
import { KubeConfig } from '@kubernetes/client-node';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { down, ROOT, supervisorPid, up } from '../cluster/cluster.js';
import { installCRD } from '../support/crd.js';
import { buildForChaos } from './build.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
    chaosClusterDir: string;
    chaosLogDir: string;
    /** Compiled agent and coordinator ('' : run from source through tsx). */
    chaosBuildDir: string;
  }
}

export const CHAOS_CLUSTER_DIR =
  process.env['NOMA_CHAOS_CLUSTER_DIR'] ?? join(ROOT, '.cluster', 'chaos');

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // A run killed mid-row may have left the API server stopped.
  const pid = supervisorPid(CHAOS_CLUSTER_DIR);
  if (pid !== undefined) {
    try {
      process.kill(-pid, 'SIGCONT');
    } catch {
      // not a group leader any more: up() restarts it if it does not answer
    }
  }
  const [{ kubeconfig, started }, buildDir] = await Promise.all([
    up(CHAOS_CLUSTER_DIR),
    buildForChaos(join(CHAOS_CLUSTER_DIR, 'build')),
  ]);
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  await installCRD(kc);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const logDir = process.env['CHAOS_LOG_DIR'] ?? join(CHAOS_CLUSTER_DIR, 'logs', stamp);
  console.log(
    `chaos: ${started ? 'started' : 'reusing'} its control plane in ${CHAOS_CLUSTER_DIR}; logs in ${logDir}; agent and coordinator ${buildDir === '' ? 'from source (tsx)' : `compiled in ${buildDir}`}`,
  );
  project.provide('kubeconfig', kubeconfig);
  project.provide('chaosClusterDir', CHAOS_CLUSTER_DIR);
  project.provide('chaosLogDir', logDir);
  project.provide('chaosBuildDir', buildDir);
  return async () => {
    if (started && process.env['NOMA_KEEP_CLUSTER'] !== '1') await down(CHAOS_CLUSTER_DIR);
  };
}

// Starts the local control plane once for the whole integration run, unless one is running
// already (then it is reused and left running). Set NOMA_KEEP_CLUSTER=1 to keep one this run started.
import type { TestProject } from 'vitest/node';
import { down, up } from '../cluster/cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { kubeconfig, started } = await up();
  console.log(
    `integration tests: ${started ? 'started' : 'reusing'} the local kube-apiserver (${kubeconfig})`,
  );
  project.provide('kubeconfig', kubeconfig);
  return async () => {
    if (started && process.env['NOMA_KEEP_CLUSTER'] !== '1') await down();
  };
}

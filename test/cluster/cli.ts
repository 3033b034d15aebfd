// npm run cluster:build | cluster:up | cluster:down
import { build, down, KUBECONFIG, up } from './cluster.js';

const command = process.argv[2];
try {
  switch (command) {
    case 'build':
      await build();
      console.log('control plane built');
      break;
    case 'up': {
      await build();
      const { started } = await up();
      console.log(`${started ? 'started' : 'reusing running'} control plane`);
      console.log(`export KUBECONFIG=${KUBECONFIG}`);
      break;
    }
    case 'down':
      console.log((await down()) ? 'control plane stopped' : 'no control plane was running');
      break;
    default:
      console.error('usage: cli.ts build|up|down');
      process.exitCode = 2;
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
}

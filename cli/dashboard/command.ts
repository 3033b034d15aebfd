// `noma dashboard`: a live fleet view in the browser, served from this machine. Only the flags
// live here; the server and the Kubernetes client are loaded when the command runs.
import { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { CliIO } from '../io.js';

interface DashboardFlags {
  port?: string;
  open: boolean;
  namespace?: string;
  selector?: string;
  context?: string;
  kubeconfig?: string;
}

/** Pure: `--port` as a TCP port; 0 lets the OS pick a free one. */
export function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw new UsageError('--port', `"${text}" is not a port (0-65535; 0: any free port)`);
  }
  return port;
}

export function dashboardCommand(io: CliIO, bin: string, setExit: (code: number) => void) {
  return new Command('dashboard')
    .summary('a live view of the fleet and its maintenances, in the browser')
    .description(
      'Serve a live view of the fleet on 127.0.0.1: every node as a tile grouped by tier and ' +
        'GPU SKU, colored by state (ready, cordoned, in maintenance and its phase, down, GPU ' +
        'degraded), and each maintenance with its nodes’ progress (a timeline of phases, the ' +
        'current step, the drain and what blocks it) and its Events. It watches the cluster ' +
        'with your kubeconfig, so it shows what you may see; nothing is installed or exposed ' +
        'in the cluster, and nothing is changed. Ctrl-C stops it.',
    )
    .option('--port <port>', 'port on 127.0.0.1 (default: one the OS picks)')
    .option('--no-open', 'do not open a browser; only print the URL')
    .option('-n, --namespace <namespace>', 'maintenances of this namespace (default: all)')
    .option('-l, --selector <selector>', 'only the nodes matching this label selector')
    .option('--context <name>', 'kubeconfig context')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .addHelpText(
      'after',
      `
Examples:
  ${bin} dashboard
  ${bin} dashboard --context prod-east --port 8765 --no-open
  ${bin} dashboard -l hardware.tier=training -n maintenance
`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const flags = cmd.opts<DashboardFlags>();
      const port = parsePort(flags.port ?? '0');
      const { runDashboard } = await import('./run.js');
      setExit(
        await runDashboard(
          {
            port,
            open: flags.open,
            namespace: flags.namespace,
            selector: flags.selector,
            context: flags.context,
            kubeconfig: flags.kubeconfig,
          },
          io,
        ),
      );
    });
}

// `noma dashboard` once its flags are checked: the watches (with the user's own kubeconfig, so
// the page shows what this user may see), the hub that turns them into a view, and the local
// server the browser reads it from. Loaded only when the command runs, with the Kubernetes
// client.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { retry } from '../../shared/retry.js';
import { VERSION } from '../../shared/version.js';
import type { CliIO } from '../io.js';
import { apiErrorText, loadKubeConfig } from '../kube/client.js';
import { follow, type FollowHooks, type WatchSource } from '../status/follow.js';
import { maintenanceSource } from '../status/kube-source.js';
import { DashboardHub } from './hub.js';
import { startServer } from './server.js';
import { eventSource, nodeSource } from './sources.js';
import { bounded, type SourceName, type SourceState } from './state.js';

export interface DashboardOptions {
  readonly port: number;
  readonly open: boolean;
  /** The maintenances' (and their Events') namespace; every namespace when undefined. */
  readonly namespace: string | undefined;
  /** Which nodes (a label selector); every node when undefined. */
  readonly selector: string | undefined;
  readonly context: string | undefined;
  readonly kubeconfig: string | undefined;
}

const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

const errorText = (err: unknown): string => bounded(apiErrorText(err)) ?? 'unknown error';

/**
 * Follows one source into the hub until `signal` aborts. `follow` retries what is transient and
 * gives up on the rest (403: this user may not watch it; 404: no CRD); the page says why, and it
 * is tried again, slowly, since RBAC and CRDs change.
 */
async function feed(
  hub: DashboardHub,
  name: SourceName,
  source: WatchSource,
  signal: AbortSignal,
): Promise<void> {
  const tracked: WatchSource = {
    list: async () => {
      const listed = await source.list();
      hub.setSource(name, { state: 'live', error: null });
      return listed;
    },
    watch: (rv, onEvent, s) => source.watch(rv, onEvent, s),
  };
  const hooks: FollowHooks = {
    onChange: (objects) => {
      hub.update(name, objects);
    },
    onTrouble: (err) => {
      hub.setSource(name, { state: 'trouble', error: errorText(err) });
    },
  };
  await retry(() => follow(tracked, hooks, signal, false), {
    baseMs: 5_000,
    maxMs: 60_000,
    signal,
    retryable: () => true,
    onRetry: (err) => {
      hooks.onTrouble(err, 0);
    },
  }).catch(() => undefined);
}

/** Best effort: the URL is printed anyway. */
function openBrowser(url: string, io: CliIO): void {
  const [cmd, args]: [string, string[]] =
    process.platform === 'darwin'
      ? ['open', [url]]
      : process.platform === 'win32'
        ? ['cmd', ['/c', 'start', '""', url]]
        : ['xdg-open', [url]];
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  child.on('error', () => {
    io.err(`could not start a browser (${cmd}); open ${url}\n`);
  });
  child.unref();
}

function sourceLine(source: SourceName, state: SourceState): string {
  return state.state === 'trouble'
    ? `warning: watching ${source}: ${state.error ?? 'failed'} (retrying)\n`
    : '';
}

export async function runDashboard(opts: DashboardOptions, io: CliIO): Promise<number> {
  const kc = loadKubeConfig(opts);
  const hub = new DashboardHub(
    {
      context: kc.getCurrentContext(),
      user: kc.getCurrentUser()?.name ?? '',
      server: kc.getCurrentCluster()?.server ?? '',
      namespace: opts.namespace ?? null,
      selector: opts.selector ?? null,
      version: VERSION,
    },
    {
      onSourceState: (source, state) => {
        io.err(sourceLine(source, state));
      },
    },
  );
  const server = await startServer(hub, opts.port, STATIC_DIR).catch((err: unknown) => {
    hub.close();
    throw new Error(
      `cannot listen on 127.0.0.1:${opts.port}: ${err instanceof Error ? err.message : String(err)}`,
    );
  });
  const ac = new AbortController();
  const feeds = [
    feed(hub, 'nodes', nodeSource(kc, opts.selector), ac.signal),
    feed(
      hub,
      'maintenances',
      maintenanceSource(kc, { namespace: opts.namespace, name: undefined }),
      ac.signal,
    ),
    feed(hub, 'maintenanceEvents', eventSource(kc, 'NodeMaintenance', opts.namespace), ac.signal),
    feed(hub, 'nodeEvents', eventSource(kc, 'Node', 'default'), ac.signal),
  ];
  io.out(`noma dashboard: ${server.url}  (Ctrl-C to stop)\n`);
  if (opts.open) openBrowser(server.url, io);
  await io.interrupted;
  ac.abort();
  hub.close();
  await server.close();
  await Promise.all(feeds);
  return 0;
}

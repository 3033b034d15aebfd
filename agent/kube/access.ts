import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';

/**
 * How to reach and authenticate to the API server: from a kubeconfig file or from the pod's
 * ServiceAccount. The agent keeps its own small loader instead of @kubernetes/client-node's
 * KubeConfig because importing that pulls in the whole generated API (over a second of start
 * time and ~70 MiB of resident memory on every node), for the four calls the agent makes.
 * Supported: server CA, client certificates, bearer tokens and token files. Exec and
 * auth-provider plugins are not: the agent runs in-cluster.
 */
export interface KubeAccess {
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecureSkipTLSVerify: boolean;
  readonly tlsServerName?: string;
  /** Returns the current bearer token (re-read from its file: projected tokens rotate). */
  readonly token?: () => Promise<string>;
  readonly basicAuth?: string;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Re-reads a token file at most once a minute. */
function tokenFromFile(path: string): () => Promise<string> {
  let cached: { token: string; at: number } | undefined;
  return async () => {
    if (cached === undefined || Date.now() - cached.at > 60_000) {
      cached = { token: (await readFile(path, 'utf8')).trim(), at: Date.now() };
    }
    return cached.token;
  };
}

/** The pod's ServiceAccount, as client-go's rest.InClusterConfig() finds it. */
export async function inClusterAccess(env: NodeJS.ProcessEnv = process.env): Promise<KubeAccess> {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (host === undefined || host === '' || port === undefined || port === '') {
    throw new Error(
      'not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); pass --kubeconfig',
    );
  }
  const tokenPath = join(SERVICE_ACCOUNT_DIR, 'token');
  await readFile(tokenPath, 'utf8'); // fail at start, not at the first request
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: await readFile(join(SERVICE_ACCOUNT_DIR, 'ca.crt')),
    insecureSkipTLSVerify: false,
    token: tokenFromFile(tokenPath),
  };
}

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(obj: Json, key: string): string | undefined {
  const v = obj[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function named(list: unknown, name: string, field: string, what: string): Json {
  const entry = Array.isArray(list)
    ? list.find((e): e is Json => isRecord(e) && e['name'] === name)
    : undefined;
  const inner = entry?.[field];
  if (!isRecord(inner)) throw new Error(`no ${what} named "${name}"`);
  return inner;
}

/** Loads the current context of a kubeconfig file. */
export async function kubeconfigAccess(path: string): Promise<KubeAccess> {
  const doc: unknown = parseYaml(await readFile(path, 'utf8'));
  if (!isRecord(doc)) throw new Error(`${path}: not a kubeconfig`);
  const contextName = str(doc, 'current-context');
  if (contextName === undefined) throw new Error(`${path}: no current-context`);
  const context = named(doc['contexts'], contextName, 'context', 'context');
  const cluster = named(doc['clusters'], str(context, 'cluster') ?? '', 'cluster', 'cluster');
  const userName = str(context, 'user');
  const user = userName === undefined ? {} : named(doc['users'], userName, 'user', 'user');
  const base = dirname(path);
  const file = (p: string): Promise<Buffer> => readFile(isAbsolute(p) ? p : join(base, p));
  const material = async (dataKey: string, fileKey: string, from: Json) => {
    const data = str(from, dataKey);
    if (data !== undefined) return Buffer.from(data, 'base64');
    const f = str(from, fileKey);
    return f === undefined ? undefined : file(f);
  };
  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) {
    throw new Error(
      `${path}: user "${userName ?? ''}" uses an exec or auth-provider plugin, which the agent does not support; use a token or a client certificate`,
    );
  }
  const server = str(cluster, 'server');
  if (server === undefined) throw new Error(`${path}: cluster has no server`);
  const ca = await material('certificate-authority-data', 'certificate-authority', cluster);
  const cert = await material('client-certificate-data', 'client-certificate', user);
  const key = await material('client-key-data', 'client-key', user);
  const token = str(user, 'token');
  const tokenFile = str(user, 'tokenFile');
  const username = str(user, 'username');
  const password = str(user, 'password');
  const tlsServerName = str(cluster, 'tls-server-name');
  return {
    server: server.replace(/\/+$/, ''),
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    ...(tlsServerName === undefined ? {} : { tlsServerName }),
    ...(token !== undefined
      ? { token: () => Promise.resolve(token) }
      : tokenFile !== undefined
        ? { token: tokenFromFile(isAbsolute(tokenFile) ? tokenFile : join(base, tokenFile)) }
        : {}),
    ...(username !== undefined && password !== undefined
      ? { basicAuth: Buffer.from(`${username}:${password}`).toString('base64') }
      : {}),
  };
}

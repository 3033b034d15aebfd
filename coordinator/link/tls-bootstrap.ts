// The agent link's TLS material from the API, with no cert-manager needed: the coordinator reads
// its Secret (kubernetes.io/tls: tls.crt, tls.key, ca.crt, and ca.key when it made the CA
// itself), creates it when it is missing, renews the serving certificate when it expires within
// RENEW_BEFORE_MS, and publishes the CA certificate in the ConfigMap the agents mount. A Secret
// made by cert-manager or by hand is used as it is (rotation is then theirs).
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { CoreV1Api, V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { generateCa, generateServingCert, type KeyPair } from '../../shared/certs.js';
import { isConflict, isNotFound } from '../../shared/kube-errors.js';
import { retryOnConflict } from '../../shared/retry.js';

export interface ObjectRef {
  readonly namespace: string;
  readonly name: string;
}

export interface LinkTlsOptions {
  readonly secret: ObjectRef;
  /** Where the CA certificate is published for the agents; none: not published. */
  readonly caConfigMap: ObjectRef | undefined;
  /** The serving certificate's names (DNS names or IPv4 addresses). */
  readonly hosts: readonly string[];
  readonly log: Logger;
  /** For the tests; default Date.now. */
  readonly now?: () => number;
}

/** What the link server is given: the serving certificate, its key, and the CA behind them. */
export interface LinkTlsMaterial {
  readonly cert: string;
  readonly key: string;
  readonly caCert: string;
}

const DAY_MS = 24 * 3_600_000;
/** Renewed this long before it expires: the same margin as the cert-manager overlay's. */
export const RENEW_BEFORE_MS = 30 * DAY_MS;
/** The serving certificate lives a year; the CA ten, so agents keep trusting across renewals. */
const CERT_DAYS = 365;
const CA_DAYS = 3650;
/** cert-manager marks the Secrets it owns with this annotation; those it renews itself. */
const CERT_MANAGER_ANNOTATION = 'cert-manager.io/certificate-name';

/** The names a coordinator's serving certificate carries for the Service `service`. */
export function linkHosts(service: string, namespace: string): string[] {
  return [
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
    `${service}.${namespace}`,
    service,
    // The sandbox and the tests reach a coordinator that runs as a local process.
    'localhost',
    '127.0.0.1',
  ];
}

type Api = Pick<
  CoreV1Api,
  | 'readNamespacedSecret'
  | 'createNamespacedSecret'
  | 'replaceNamespacedSecret'
  | 'readNamespacedConfigMap'
  | 'createNamespacedConfigMap'
  | 'replaceNamespacedConfigMap'
>;

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) =>
  s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8');

/** Tries per read-modify-write; a replica that lost a race (409) re-reads what won. */
const MAX_ATTEMPTS = 5;

/** For a catch: the last of too many conflicts said as such, any other error as it is. */
const conflictsAs =
  (what: string) =>
  (err: unknown): never => {
    throw isConflict(err) ? new Error(`${what}: kept conflicting`, { cause: err }) : err;
  };

async function readOrUndefined<T>(call: Promise<T>): Promise<T | undefined> {
  return call.catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
}

interface Stored {
  readonly material: LinkTlsMaterial;
  readonly caKey: string | undefined;
}

/** The Secret's contents, or the reason they cannot serve. */
function inspect(secret: V1Secret, now: number): Stored | string {
  const data = secret.data ?? {};
  const cert = unb64(data['tls.crt']);
  const key = unb64(data['tls.key']);
  const caCert = unb64(data['ca.crt']);
  if (cert === undefined || key === undefined || caCert === undefined) {
    return 'tls.crt, tls.key or ca.crt missing';
  }
  try {
    const x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key))) return 'tls.key does not match tls.crt';
    const ca = new X509Certificate(caCert);
    if (!x509.verify(ca.publicKey)) return 'tls.crt is not signed by ca.crt';
    if (Date.parse(x509.validTo) - now < RENEW_BEFORE_MS) return 'tls.crt expires soon';
  } catch (err) {
    return `unreadable: ${err instanceof Error ? err.message : String(err)}`;
  }
  return { material: { cert, key, caCert }, caKey: unb64(data['ca.key']) };
}

/** A new serving certificate, signed by `ca` when it is usable, else by a new CA. */
async function issue(
  hosts: readonly string[],
  ca: KeyPair | undefined,
  now: number,
): Promise<{ material: LinkTlsMaterial; caKey: string }> {
  const caUsable =
    ca !== undefined && Date.parse(new X509Certificate(ca.cert).validTo) - now > CERT_DAYS * DAY_MS;
  const authority = caUsable ? ca : await generateCa('noma agent link CA', CA_DAYS);
  const serving = await generateServingCert(authority, hosts, CERT_DAYS);
  return {
    material: { cert: serving.cert, key: serving.key, caCert: authority.cert },
    caKey: authority.key,
  };
}

function secretBody(
  ref: ObjectRef,
  issued: { material: LinkTlsMaterial; caKey: string },
  resourceVersion?: string,
): V1Secret {
  return {
    metadata: {
      name: ref.name,
      namespace: ref.namespace,
      labels: { 'app.kubernetes.io/name': 'noma', 'app.kubernetes.io/component': 'coordinator' },
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    },
    type: 'kubernetes.io/tls',
    data: {
      'tls.crt': b64(issued.material.cert),
      'tls.key': b64(issued.material.key),
      'ca.crt': b64(issued.material.caCert),
      // Kept so that a renewal is signed by the same CA: agents go on trusting it.
      'ca.key': b64(issued.caKey),
    },
  };
}

/**
 * The link's TLS material from the Secret, created or renewed as needed; the CA certificate is
 * then published. Several replicas may race: the loser of a create or an update (409) reads
 * what the winner stored.
 */
export async function ensureLinkTls(api: Api, opts: LinkTlsOptions): Promise<LinkTlsMaterial> {
  const now = (opts.now ?? Date.now)();
  const { namespace, name } = opts.secret;
  const material = await retryOnConflict(() => ensureSecret(api, opts, now), {
    attempts: MAX_ATTEMPTS,
  }).catch(conflictsAs(`Secret ${namespace}/${name}`));
  if (opts.caConfigMap !== undefined)
    await publishCa(api, opts.caConfigMap, material.caCert, opts.log);
  return material;
}

/** One read of the Secret and, if it cannot serve, one create or replace (409: lost a race). */
async function ensureSecret(api: Api, opts: LinkTlsOptions, now: number): Promise<LinkTlsMaterial> {
  const { namespace, name } = opts.secret;
  const secret = await readOrUndefined(api.readNamespacedSecret({ namespace, name }));
  if (secret === undefined) {
    const issued = await issue(opts.hosts, undefined, now);
    await api.createNamespacedSecret({ namespace, body: secretBody(opts.secret, issued) });
    opts.log.info({ secret: `${namespace}/${name}` }, 'created the agent link TLS Secret');
    return issued.material;
  }
  const stored = inspect(secret, now);
  if (typeof stored !== 'string') return stored.material;
  if (secret.metadata?.annotations?.[CERT_MANAGER_ANNOTATION] !== undefined) {
    // Not ours to rewrite: cert-manager would fight over it. It renews before expiry.
    throw new Error(`Secret ${namespace}/${name} (cert-manager) cannot serve: ${stored}`);
  }
  const oldCa = unb64(secret.data?.['ca.crt']);
  const oldCaKey = unb64(secret.data?.['ca.key']);
  const ca =
    oldCa !== undefined && oldCaKey !== undefined ? { cert: oldCa, key: oldCaKey } : undefined;
  const issued = await issue(opts.hosts, ca, now);
  await api.replaceNamespacedSecret({
    namespace,
    name,
    body: secretBody(opts.secret, issued, secret.metadata?.resourceVersion),
  });
  opts.log.info(
    { secret: `${namespace}/${name}`, reason: stored, newCa: issued.caKey !== oldCaKey },
    'renewed the agent link TLS Secret',
  );
  return issued.material;
}

/** Creates or updates the ConfigMap's ca.crt (what the agents trust), when it differs. */
async function publishCa(api: Api, ref: ObjectRef, caCert: string, log: Logger): Promise<void> {
  const { namespace, name } = ref;
  const once = async (): Promise<void> => {
    const cm = await readOrUndefined(api.readNamespacedConfigMap({ namespace, name }));
    if (cm?.data?.['ca.crt'] === caCert) return;
    const body: V1ConfigMap = {
      metadata: {
        name,
        namespace,
        labels: { 'app.kubernetes.io/name': 'noma', 'app.kubernetes.io/component': 'coordinator' },
        ...(cm?.metadata?.resourceVersion === undefined
          ? {}
          : { resourceVersion: cm.metadata.resourceVersion }),
      },
      data: { ...(cm?.data ?? {}), 'ca.crt': caCert },
    };
    if (cm === undefined) await api.createNamespacedConfigMap({ namespace, body });
    else await api.replaceNamespacedConfigMap({ namespace, name, body });
    log.info({ configMap: `${namespace}/${name}` }, 'published the agent link CA');
  };
  await retryOnConflict(once, { attempts: MAX_ATTEMPTS }).catch(
    conflictsAs(`ConfigMap ${namespace}/${name}`),
  );
}

// Certificate generation for the agent link, the one place that makes certificates: a private
// CA and a serving certificate signed by it. The coordinator uses it at run time to bootstrap
// its TLS Secret (coordinator/link/tls-bootstrap.ts); the sandbox, the tests and the benchmark
// through shared/dev-certs.ts. `selfsigned` is therefore a runtime dependency.
import { generate } from 'selfsigned';

/** A PEM certificate and its PEM private key. */
export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

const DAY_MS = 24 * 3_600_000;

/** A self-signed CA that may sign certificates (and nothing else). */
export async function generateCa(commonName: string, validDays: number): Promise<KeyPair> {
  const ca = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + validDays * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { cert: ca.cert, key: ca.private };
}

/**
 * A TLS server certificate for `hosts` (DNS names, or IPv4 addresses), signed by `ca`. The first
 * host is also the common name.
 */
export async function generateServingCert(
  ca: KeyPair,
  hosts: readonly string[],
  validDays: number,
): Promise<KeyPair> {
  const server = await generate([{ name: 'commonName', value: hosts[0] ?? 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + validDays * DAY_MS),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: hosts.map((h) =>
          /^[\d.]+$/.test(h) ? { type: 7, ip: h } : { type: 2, value: h },
        ),
      },
    ],
  });
  return { cert: server.cert, key: server.private };
}

// A CA and a serving certificate signed by it, generated in-process, for the agent link in the
// sandbox, the tests and the benchmark (production mounts real ones). Uses `selfsigned`, a
// development dependency: nothing that ships imports this file.
import { generate } from 'selfsigned';

export interface DevCerts {
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

export async function generateDevCerts(
  hosts: readonly string[] = ['localhost', '127.0.0.1'],
): Promise<DevCerts> {
  const notAfterDate = new Date(Date.now() + 7 * 24 * 3_600_000);
  const ca = await generate([{ name: 'commonName', value: 'noma sandbox CA' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const server = await generate([{ name: 'commonName', value: hosts[0] ?? 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
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
  return { caCert: ca.cert, cert: server.cert, key: server.private };
}

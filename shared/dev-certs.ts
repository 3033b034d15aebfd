// A CA and a serving certificate signed by it, generated in-process, for the agent link in the
// sandbox, the tests and the benchmark. Short-lived (7 days): nothing keeps these.
import { generateCa, generateServingCert } from './certs.js';

export interface DevCerts {
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

export async function generateDevCerts(
  hosts: readonly string[] = ['localhost', '127.0.0.1'],
): Promise<DevCerts> {
  const ca = await generateCa('noma sandbox CA', 7);
  const server = await generateServingCert(ca, hosts, 7);
  return { caCert: ca.cert, cert: server.cert, key: server.key };
}

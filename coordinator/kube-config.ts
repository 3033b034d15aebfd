// The coordinator's Kubernetes client configuration.
import { Agent } from 'node:https';
import { createSecureContext } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

/**
 * client-node 1.x builds a new https.Agent for every request: every API call parses the CA
 * bundle into a new TLS context and does a full handshake, on both ends. At 2000 nodes that was
 * a third of the coordinator's CPU. This KubeConfig gives every request one Agent, built from
 * the options of the first (so CA and client certificate are the kubeconfig's; bearer tokens
 * are headers and still read per request): its TLS context is built once and its sessions are
 * resumed. Connections are still not kept alive — node-fetch, under client-node, misreads
 * reused sockets as "Premature close" (node-fetch issue 1767). Proxied requests keep
 * client-node's own agent.
 */
export class SharedAgentKubeConfig extends KubeConfig {
  #agent: Agent | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const built = context.getAgent();
    if (!(built instanceof Agent) || built.constructor !== Agent) return;
    if (this.#agent === undefined) {
      const { ca, cert, key, pfx, passphrase, ...rest } = built.options;
      // tls.connect builds a new context from ca/cert/key unless handed one.
      const secureContext = createSecureContext({ ca, cert, key, pfx, passphrase });
      this.#agent = new Agent({ ...rest, secureContext, keepAlive: false, maxCachedSessions: 256 });
    }
    context.setAgent(this.#agent);
  }
}

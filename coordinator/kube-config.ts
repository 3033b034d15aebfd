// The coordinator's Kubernetes client configuration.
import { Agent } from 'node:https';
import { createSecureContext } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { REQUEST_TIMEOUT_MS } from '../shared/request-timeout.js';

export { REQUEST_TIMEOUT_MS };

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

/**
 * client-node 1.x builds a new https.Agent for every request: every API call parses the CA
 * bundle into a new TLS context and does a full handshake, on both ends. At 2000 nodes that was
 * a third of the coordinator's CPU. This KubeConfig gives every request one Agent, built from
 * the options of the first (so CA and client certificate are the kubeconfig's; bearer tokens
 * are headers and still read per request): its TLS context is built once and its sessions are
 * resumed; and every request gets a timeout. Connections are still not kept alive — node-fetch, under client-node, misreads
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
      // No maxSockets: requests queued inside the agent could wait forever behind sockets
      // that node-fetch never gives back (seen at 2000 nodes). Callers bound their own
      // concurrency (NodeOps, drain).
      this.#agent = new Agent({ ...rest, secureContext, keepAlive: false, maxCachedSessions: 256 });
    }
    context.setAgent(this.#agent);
    // node-fetch has no timeout of its own: a response that never comes (a connection dropped
    // without a reset) would hold a node's task forever. Watches do not come through here.
    if (context.getSignal() === undefined) {
      context.setSignal(AbortSignal.timeout(REQUEST_TIMEOUT_MS));
    }
  }
}

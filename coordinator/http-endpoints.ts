// The coordinator's HTTP endpoints beyond the probes: who may read them (TokenReview and
// SubjectAccessReview through the API server, shared/endpoint-auth.ts) and what `/agents`
// shows of the link's agents.
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { EndpointReviewer } from '../shared/endpoint-auth.js';
import type { AgentInfo } from './link/server.js';

/** The reviews made as the coordinator's own identity (its ClusterRole: create on both). */
export function kubeEndpointReviewer(kc: KubeConfig): EndpointReviewer {
  const authn = kc.makeApiClient(AuthenticationV1Api);
  const authz = kc.makeApiClient(AuthorizationV1Api);
  return {
    // No audiences: the API server's own, as for a token sent to the API server. An agent's
    // link token (audience noma.dev) is not one of them.
    reviewToken: async (token) =>
      (await authn.createTokenReview({ body: { spec: { token } } })).status,
    mayGet: async (user, path) => {
      const review = await authz.createSubjectAccessReview({
        body: {
          spec: {
            // Who the TokenReview said: name, uid, groups and extra (a bound token's pod and
            // node), all of which RBAC and webhooks may decide on.
            ...(user.username === undefined ? {} : { user: user.username }),
            ...(user.uid === undefined ? {} : { uid: user.uid }),
            ...(user.groups === undefined ? {} : { groups: user.groups }),
            ...(user.extra === undefined ? {} : { extra: user.extra }),
            nonResourceAttributes: { path, verb: 'get' },
          },
        },
      });
      const reason = review.status?.reason;
      return {
        allowed: review.status?.allowed === true,
        ...(reason === undefined ? {} : { reason }),
      };
    },
  };
}

/** An agent as `/agents` shows it. */
export type PublicAgent = Omit<AgentInfo, 'running'> & {
  readonly running: Record<string, { state: string }>;
};

/**
 * Pure: the link's agents without what their actions printed. Output tails are a step's
 * output (anything a script echoes, secrets included): they belong in the maintenance's
 * status, readable by whoever may read it, not on an endpoint for monitoring.
 */
export function publicAgents(agents: readonly AgentInfo[]): PublicAgent[] {
  return agents.map((a) => ({
    ...a,
    running: Object.fromEntries(
      Object.entries(a.running).map(([id, r]) => [id, { state: r.state }]),
    ),
  }));
}

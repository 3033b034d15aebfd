// Who is on the other end of an agent connection: the projected ServiceAccount token is checked
// with TokenReview (audience specific to noma), must belong to the agent's ServiceAccount, and
// names the node the connection may speak for: the node the token is bound to, from the bound
// token's node claim or else from the bound pod's spec.nodeName.
import type { V1Pod, V1TokenReviewStatus } from '@kubernetes/client-node';

export const EXTRA_NODE = 'authentication.kubernetes.io/node-name';
export const EXTRA_POD = 'authentication.kubernetes.io/pod-name';
export const EXTRA_POD_UID = 'authentication.kubernetes.io/pod-uid';

export interface AgentIdentity {
  readonly node: string;
  readonly username: string;
  readonly pod?: string;
}

export type AuthResult =
  { ok: true; identity: AgentIdentity } | { ok: false; status: 401 | 403; reason: string };

export interface AuthExpectations {
  readonly audience: string;
  /** `namespace/name` of the agents' ServiceAccount. */
  readonly serviceAccount: string;
}

type ReviewCheck =
  | { kind: 'refused'; status: 401 | 403; reason: string }
  | { kind: 'node'; node: string; username: string }
  | { kind: 'pod'; namespace: string; pod: string; uid: string | undefined; username: string };

const first = (extra: Record<string, string[]> | undefined, key: string): string | undefined => {
  const v = extra?.[key]?.[0];
  return v === undefined || v === '' ? undefined : v;
};

/** Pure: what a TokenReview status says about an agent connection. */
export function checkReview(
  status: V1TokenReviewStatus | undefined,
  expect: AuthExpectations,
): ReviewCheck {
  if (status?.authenticated !== true) {
    return {
      kind: 'refused',
      status: 401,
      reason: `token not accepted${status?.error === undefined ? '' : `: ${status.error}`}`,
    };
  }
  // The API server only authenticates a token for the audiences asked for; check anyway, so a
  // token for the API server itself can never open the link.
  if (!(status.audiences ?? []).includes(expect.audience)) {
    return { kind: 'refused', status: 401, reason: `token is not for audience ${expect.audience}` };
  }
  const [ns, name] = expect.serviceAccount.split('/');
  const want = `system:serviceaccount:${ns ?? ''}:${name ?? ''}`;
  const username = status.user?.username ?? '';
  if (username !== want) {
    return { kind: 'refused', status: 403, reason: `${username} is not the agent ServiceAccount` };
  }
  const extra = status.user?.extra;
  const node = first(extra, EXTRA_NODE);
  if (node !== undefined) return { kind: 'node', node, username };
  const pod = first(extra, EXTRA_POD);
  if (pod !== undefined) {
    return { kind: 'pod', namespace: ns ?? '', pod, uid: first(extra, EXTRA_POD_UID), username };
  }
  return {
    kind: 'refused',
    status: 403,
    reason: 'token is not bound to a pod or node; use a projected ServiceAccount token',
  };
}

export interface AuthDeps {
  review(token: string, audiences: string[]): Promise<V1TokenReviewStatus | undefined>;
  readPod(namespace: string, name: string): Promise<V1Pod | undefined>;
}

export async function authenticateAgent(
  token: string,
  expect: AuthExpectations,
  deps: AuthDeps,
): Promise<AuthResult> {
  const check = checkReview(await deps.review(token, [expect.audience]), expect);
  switch (check.kind) {
    case 'refused':
      return { ok: false, status: check.status, reason: check.reason };
    case 'node':
      return { ok: true, identity: { node: check.node, username: check.username } };
    case 'pod': {
      const pod = await deps.readPod(check.namespace, check.pod);
      // The UID check catches a token bound to an earlier pod of the same name.
      if (pod === undefined || (check.uid !== undefined && pod.metadata?.uid !== check.uid)) {
        return { ok: false, status: 403, reason: `bound pod ${check.pod} no longer exists` };
      }
      const node = pod.spec?.nodeName;
      if (node === undefined || node === '') {
        return { ok: false, status: 403, reason: `bound pod ${check.pod} is not on a node` };
      }
      return { ok: true, identity: { node, username: check.username, pod: check.pod } };
    }
  }
}

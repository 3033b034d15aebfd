// Who is on the other end of an agent connection: the projected ServiceAccount token is checked
// with TokenReview (audience specific to noma), must belong to the agent's ServiceAccount, and
// names the node the connection may speak for: the node the token is bound to, from the bound
// token's node claim or else from the bound pod's spec.nodeName. The connection lives no longer
// than its credential: the identity carries when the token expires and which pod it is bound to.
import {
  AuthenticationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Pod,
  type V1TokenReviewStatus,
} from '@kubernetes/client-node';
import { isNotFound } from '../../shared/kube-errors.js';

export const EXTRA_NODE = 'authentication.kubernetes.io/node-name';
export const EXTRA_POD = 'authentication.kubernetes.io/pod-name';
export const EXTRA_POD_UID = 'authentication.kubernetes.io/pod-uid';

/** The pod a token is bound to: its deletion ends the connection. */
export interface BoundPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
}

export interface AgentIdentity {
  readonly node: string;
  readonly username: string;
  readonly pod?: BoundPod;
  /** When the token stops being good (ms since the epoch): the connection is closed then. */
  readonly expiresAt?: number;
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
  | { kind: 'node'; node: string; username: string; pod?: BoundPod }
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
  const pod = first(extra, EXTRA_POD);
  const uid = first(extra, EXTRA_POD_UID);
  if (node !== undefined) {
    // A token bound to a scheduled pod names both: the pod still matters, its deletion ends it.
    if (pod === undefined) return { kind: 'node', node, username };
    const bound = { namespace: ns ?? '', name: pod, ...(uid === undefined ? {} : { uid }) };
    return { kind: 'node', node, username, pod: bound };
  }
  if (pod !== undefined) return { kind: 'pod', namespace: ns ?? '', pod, uid, username };
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

/** What a ServiceAccount token says of itself, unverified (the JWT payload). */
export interface TokenClaims {
  readonly aud: readonly string[];
  readonly sub?: string;
  /** Seconds since the epoch. */
  readonly exp?: number;
  /** Seconds: an extended token (kubelet's 3607 s) should be replaced from then on. */
  readonly warnafter?: number;
}

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? v : undefined;

/** Pure: the claims of a JWT, or undefined when `token` is no JWT with a JSON payload. */
export function tokenClaims(token: string): TokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined || parts[1].length > 16_384) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
  const p = payload as Record<string, unknown>;
  const aud = typeof p['aud'] === 'string' ? [p['aud']] : p['aud'];
  const k8s = p['kubernetes.io'];
  const exp = num(p['exp']);
  const warnafter =
    typeof k8s === 'object' && k8s !== null
      ? num((k8s as Record<string, unknown>)['warnafter'])
      : undefined;
  return {
    aud: Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [],
    ...(typeof p['sub'] === 'string' ? { sub: p['sub'] } : {}),
    ...(exp === undefined ? {} : { exp }),
    ...(warnafter === undefined ? {} : { warnafter }),
  };
}

/**
 * Pure: why a token cannot be the agents' before anyone is asked (not a JWT, another audience,
 * another subject), with the status a TokenReview of a genuine such token would lead to, or
 * undefined. Not a check of authenticity (anyone can write these claims): it keeps junk from
 * costing a TokenReview.
 */
export function screenToken(
  claims: TokenClaims | undefined,
  expect: AuthExpectations,
): { status: 401 | 403; reason: string } | undefined {
  if (claims === undefined) return { status: 401, reason: 'not a ServiceAccount token' };
  if (!claims.aud.includes(expect.audience)) {
    return { status: 401, reason: `token is not for audience ${expect.audience}` };
  }
  const [ns, name] = expect.serviceAccount.split('/');
  if (claims.sub !== `system:serviceaccount:${ns ?? ''}:${name ?? ''}`) {
    return { status: 403, reason: 'token is not of the agent ServiceAccount' };
  }
  return undefined;
}

/**
 * Pure: when a token stops being good, in ms: its `exp`, or earlier its `warnafter` (an
 * expiry the API server extended for old clients; the kubelet has rotated the file by then).
 */
export function tokenExpiresAt(claims: TokenClaims | undefined): number | undefined {
  const times = [claims?.exp, claims?.warnafter].filter((t): t is number => t !== undefined);
  return times.length === 0 ? undefined : Math.min(...times) * 1000;
}

export async function authenticateAgent(
  token: string,
  expect: AuthExpectations,
  deps: AuthDeps,
): Promise<AuthResult> {
  const claims = tokenClaims(token);
  const junk = screenToken(claims, expect);
  if (junk !== undefined) return { ok: false, ...junk };
  const check = checkReview(await deps.review(token, [expect.audience]), expect);
  // The API server just vouched for the token, so its claims are the API server's.
  const expiresAt = tokenExpiresAt(claims);
  const expiry = expiresAt === undefined ? {} : { expiresAt };
  switch (check.kind) {
    case 'refused':
      return { ok: false, status: check.status, reason: check.reason };
    case 'node': {
      const pod = check.pod === undefined ? {} : { pod: check.pod };
      return {
        ok: true,
        identity: { node: check.node, username: check.username, ...pod, ...expiry },
      };
    }
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
      const bound = {
        namespace: check.namespace,
        name: check.pod,
        ...(pod.metadata?.uid === undefined ? {} : { uid: pod.metadata.uid }),
      };
      return { ok: true, identity: { node, username: check.username, pod: bound, ...expiry } };
    }
  }
}

/** The TokenReview and pod read of authenticateAgent, against the API server of `kc`. */
export function kubeAuthDeps(kc: KubeConfig): AuthDeps {
  const auth = kc.makeApiClient(AuthenticationV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  return {
    review: async (token, audiences) =>
      (await auth.createTokenReview({ body: { spec: { token, audiences } } })).status,
    readPod: (namespace, name) =>
      core.readNamespacedPod({ namespace, name }).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      }),
  };
}

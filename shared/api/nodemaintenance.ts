import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { MAX_DURATION, MAX_DURATION_MS, parseDuration } from '../duration.js';
import { withRules } from './rules.js';

/**
 * The NodeMaintenance API, defined once. The TypeScript types (Static<…>), the runtime
 * validator (validate.ts) and deploy/crd.yaml (crd.ts, `npm run gen`) are all derived from the
 * schemas in this file.
 */

export const GROUP = 'noma.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'NodeMaintenance';
export const PLURAL = 'nodemaintenances';
export const SINGULAR = 'nodemaintenance';
export const SHORT_NAMES = ['noma'] as const;

/** Go's time.ParseDuration syntax without sign, e.g. `30m`, `1h30m`, `90s`, `0`. */
export const DURATION_PATTERN = '^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$';
export const TICKET_PATTERN = '^[A-Z][A-Z0-9]*-[0-9]+$';
export const PERCENT_PATTERN = '^[0-9]+%$';

/** A node's status message is cut to this many bytes (status-store.ts). */
export const NODE_MESSAGE_MAX_BYTES = 1024;

const Duration = (description: string) =>
  withRules(Type.String({ pattern: DURATION_PATTERN, maxLength: 64, description }), [
    {
      // Beyond ~24.8 days Node's timers fire at once; noma's own timers chain, but a month is
      // already longer than any maintenance step should wait.
      rule: `duration(self) <= duration('${MAX_DURATION}')`,
      message: `must be at most ${MAX_DURATION} (30 days)`,
      check: (v: string) => {
        const ms = parseDuration(v);
        return ms !== undefined && ms <= MAX_DURATION_MS;
      },
    },
  ]);

/** int-or-string: a count >= 0 or a percentage, with the same rule on both sides. */
const CountOrPercent = (name: string, description: string) =>
  withRules(
    Type.Union([Type.Integer(), Type.String()], {
      description,
      'x-kubernetes-int-or-string': true,
    }),
    [
      {
        rule: `type(self) == int ? self >= 0 : self.matches('${PERCENT_PATTERN}')`,
        message: `${name} must be a count >= 0 or a percentage such as 25%`,
        check: (v: number | string) =>
          typeof v === 'number' ? v >= 0 : new RegExp(PERCENT_PATTERN).test(v),
      },
    ],
  );

const StringList = (description: string, maxItems = 256) =>
  Type.Array(Type.String({ maxLength: 32768 }), { maxItems, description });

const Image = Type.String({
  minLength: 1,
  maxLength: 1024,
  description:
    'Container image. When set, the step runs as a pod pinned to the node (created by the ' +
    'coordinator); when omitted, the agent runs it on the host.',
});

export const TaintSchema = Type.Object(
  {
    key: Type.String({ minLength: 1, maxLength: 316, description: 'Taint key.' }),
    value: Type.Optional(Type.String({ maxLength: 63, description: 'Taint value.' })),
    effect: Type.Union(
      [Type.Literal('NoSchedule'), Type.Literal('PreferNoSchedule'), Type.Literal('NoExecute')],
      { description: 'Taint effect: NoSchedule, PreferNoSchedule or NoExecute.' },
    ),
  },
  { description: 'A taint added to the node while it is in maintenance and removed afterwards.' },
);

export const OptionsSchema = Type.Object(
  {
    forceDrain: Type.Optional(
      Type.Boolean({
        description:
          'After drainTimeout, delete the pods that are still on the node (bypassing ' +
          'PodDisruptionBudgets) instead of failing the node. Default false.',
      }),
    ),
    drainTimeout: Type.Optional(
      Duration(
        'How long to wait for the node to drain, as a Go duration (e.g. 30m, 1h30m). ' +
          'Default 30m.',
      ),
    ),
    drainNonGpuPods: Type.Optional(
      Type.Boolean({
        description:
          'Evict every pod, not only pods that request a GPU resource (nvidia.com/gpu…). ' +
          'Default false.',
      }),
    ),
    deleteEmptyDirData: Type.Optional(
      Type.Boolean({
        description:
          'Evict pods that use emptyDir volumes (their data is lost), like kubectl drain ' +
          '--delete-emptydir-data. Default false: such pods block the drain. Memory-backed ' +
          'emptyDirs (medium: Memory, e.g. /dev/shm of inference servers) hold nothing that ' +
          'outlives the pod and never block.',
      }),
    ),
    evictUnmanagedPods: Type.Optional(
      Type.Boolean({
        description:
          'Evict pods that no controller manages (they will not be recreated), like kubectl ' +
          'drain --force. Default false: such pods block the drain.',
      }),
    ),
    maxUnavailable: Type.Optional(
      CountOrPercent(
        'maxUnavailable',
        'How many of the selected nodes may be unavailable at once: a count (e.g. 2) or a ' +
          'percentage of the selected nodes (e.g. 25%). Counts nodes in maintenance, failed ' +
          'nodes noma still holds, and selected nodes that are NotReady or cordoned by someone ' +
          'else. Default: all selected nodes. May be changed while the maintenance runs.',
      ),
    ),
    maxFailedNodes: Type.Optional(
      CountOrPercent(
        'maxFailedNodes',
        'How many nodes may fail before the maintenance halts (phase Halted: no node starts, ' +
          'nodes in flight stop after their current step): a count or a percentage of the ' +
          'selected nodes (rounded down, at least 1). Default 1. Restoring or retrying failed ' +
          'nodes, or raising this, lets it go on. May be changed while the maintenance runs.',
      ),
    ),
    taints: Type.Optional(
      Type.Array(TaintSchema, {
        maxItems: 16,
        description:
          'Extra taints to add while a node is in maintenance, besides ' +
          'noma.dev/maintenance:NoSchedule (e.g. runai=drain:NoExecute). NoExecute taints ' +
          'are added only once noma has drained every pod through the Eviction API, so that ' +
          'the taint-eviction controller never ends a pod around its PodDisruptionBudget.',
      }),
    ),
    skipWaitForDeleteTimeout: Type.Optional(
      Duration(
        'On a node that is not Ready (no kubelet to confirm it), a pod whose deletion has been ' +
          'pending longer than this counts as gone, like kubectl drain ' +
          '--skip-wait-for-delete-timeout. Default 1m; never applies on Ready nodes.',
      ),
    ),
    agentTimeout: Type.Optional(
      Duration(
        "How long a Script/Run/Reboot waits for the node's agent to be connected before the " +
          'node fails with reason AgentUnavailable. Default 15m.',
      ),
    ),
    allowControlPlane: Type.Optional(
      Type.Boolean({
        description:
          'Allow the selector to match control-plane nodes. Default false: such a selection ' +
          'is refused.',
      }),
    ),
  },
  { description: 'How nodes are taken out of service.' },
);

export const ScriptSchema = Type.Object(
  {
    script: Type.String({
      minLength: 1,
      maxLength: 262144,
      description: 'Script text, run by bash.',
    }),
    args: Type.Optional(StringList('Arguments passed to the script ($1, $2, …).')),
    image: Type.Optional(Image),
  },
  { description: 'Body of a Script action.' },
);

export const RunSchema = Type.Object(
  {
    command: Type.Array(Type.String({ maxLength: 32768 }), {
      minItems: 1,
      maxItems: 256,
      description: 'Program and its first arguments, executed without a shell.',
    }),
    args: Type.Optional(StringList('Further arguments appended to command.')),
    image: Type.Optional(Image),
  },
  { description: 'Body of a Run action.' },
);

export const NotifySchema = Type.Object(
  {
    channel: Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'Channel name passed to the configured (Slack-compatible) webhook.',
    }),
    message: Type.String({ minLength: 1, maxLength: 4096, description: 'Message text.' }),
  },
  { description: 'Body of a Notify action.' },
);

export const InteractiveShellSchema = Type.Object(
  {
    image: Type.String({
      minLength: 1,
      maxLength: 1024,
      description: 'Image of the debug pod.',
    }),
    tty: Type.Optional(Type.Boolean({ description: 'Allocate a TTY.' })),
  },
  { description: 'Body of an InteractiveShell action.' },
);

export const ACTION_TYPES = [
  'Script',
  'Run',
  'Reboot',
  'Notify',
  'Complete',
  'DeleteNode',
  'InteractiveShell',
] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

/** The action types that carry a body, and the field that holds it. */
export const ACTION_BODIES = {
  Script: 'script',
  Run: 'run',
  Notify: 'notify',
  InteractiveShell: 'interactiveShell',
} as const satisfies Partial<Record<ActionType, string>>;

const actionObject = Type.Object(
  {
    type: Type.Union(
      ACTION_TYPES.map((t) => Type.Literal(t)),
      {
        description:
          'Script: run a script; Run: run a command; Reboot: reboot and wait until the node is ' +
          'back (new bootID, Ready, agent reconnected); Notify: post to the webhook and record ' +
          'an Event; Complete: uncordon and remove noma taints/labels (return to service); ' +
          'DeleteNode: delete the Node object (must be last); InteractiveShell: start a debug ' +
          'pod on the node and wait for a human to release it.',
      },
    ),
    name: Type.Optional(
      Type.String({ maxLength: 128, description: 'Label for this step, shown in status.' }),
    ),
    timeout: Type.Optional(
      Duration('Timeout of this step, as a Go duration. Default 1h for Script and Run.'),
    ),
    script: Type.Optional(ScriptSchema),
    run: Type.Optional(RunSchema),
    notify: Type.Optional(NotifySchema),
    interactiveShell: Type.Optional(InteractiveShellSchema),
  },
  { description: 'One step, run on every selected node after cordon and drain.' },
);

type ActionShape = Static<typeof actionObject>;

const bodyRules = Object.entries(ACTION_BODIES).flatMap(([type, field]) => [
  {
    rule: `self.type != '${type}' || has(self.${field})`,
    message: `${field} is required when type is ${type}`,
    fieldPath: `.${field}`,
    check: (a: ActionShape) => a.type !== type || a[field] !== undefined,
  },
  {
    rule: `!has(self.${field}) || self.type == '${type}'`,
    message: `${field} is only allowed when type is ${type}`,
    fieldPath: `.${field}`,
    check: (a: ActionShape) => a[field] === undefined || a.type === type,
  },
]);

export const ActionSchema = withRules(actionObject, bodyRules);
export type Action = Static<typeof ActionSchema>;

export const ActionsSchema = withRules(
  Type.Array(ActionSchema, {
    maxItems: 32,
    description:
      'Ordered steps run on every selected node after it is cordoned, tainted and drained. ' +
      'Without Complete the node stays cordoned at the end. May be empty (cordon and drain only).',
  }),
  [
    {
      rule:
        "!self.exists(a, a.type == 'DeleteNode') || " +
        "(self.exists_one(a, a.type == 'DeleteNode') && self[size(self) - 1].type == 'DeleteNode')",
      message: 'DeleteNode must be the last action, and appear at most once',
      check: (actions: Action[]) => {
        const deletes = actions.filter((a) => a.type === 'DeleteNode').length;
        return deletes === 0 || (deletes === 1 && actions.at(-1)?.type === 'DeleteNode');
      },
    },
  ],
);

export const SpecSchema = Type.Object(
  {
    operationName: Type.String({
      minLength: 1,
      maxLength: 253,
      description: 'Logical name of the operation, e.g. gpu-driver-upgrade.',
    }),
    linearTicket: Type.String({
      pattern: TICKET_PATTERN,
      maxLength: 64,
      description: 'Ticket that authorizes this maintenance, e.g. ENG-1234.',
    }),
    nodeSelector: Type.String({
      minLength: 1,
      maxLength: 4096,
      description:
        'Label selector (kubectl -l syntax) choosing the nodes, e.g. ' +
        '"kubernetes.io/hostname in (gpu-01,gpu-02)". Resolved once when the maintenance ' +
        'starts and frozen into status.observedNodes.',
    }),
    options: Type.Optional(OptionsSchema),
    actions: ActionsSchema,
    paused: Type.Optional(
      Type.Boolean({
        description:
          'Stop between steps: no node starts and no node begins its next step; steps in ' +
          'flight (drains included) finish. Phase Paused. `noma pause` / `noma resume`.',
      }),
    ),
  },
  { description: 'What to do to which nodes.' },
);
export type NodeMaintenanceSpec = Static<typeof SpecSchema>;

const Time = (description: string) => Type.String({ format: 'date-time', description });
const Count = (description: string) => Type.Integer({ minimum: 0, description });

export const ConditionSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, description: 'Condition type.' }),
    status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')], {
      description: 'True, False or Unknown.',
    }),
    reason: Type.Optional(Type.String({ maxLength: 1024, description: 'CamelCase reason.' })),
    message: Type.Optional(
      Type.String({ maxLength: 32768, description: 'Human-readable detail.' }),
    ),
    lastTransitionTime: Type.Optional(Time('When the status last changed.')),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'metadata.generation this condition is about.' }),
    ),
  },
  { description: 'A standard Kubernetes condition.' },
);
export type Condition = Static<typeof ConditionSchema>;

export const MAINTENANCE_PHASES = [
  'Pending',
  'Running',
  'Paused',
  'Halted',
  'Completed',
  'Failed',
] as const;
export type MaintenancePhase = (typeof MAINTENANCE_PHASES)[number];

export const NODE_PHASES = [
  'Pending',
  'Cordoned',
  'Draining',
  'Drained',
  'InAction',
  'Succeeded',
  'Failed',
  'Restored',
] as const;
export type NodePhase = (typeof NODE_PHASES)[number];

const NodeTaintSchema = Type.Object(
  {
    key: Type.String({ description: 'Taint key.' }),
    value: Type.Optional(Type.String({ description: 'Taint value.' })),
    effect: Type.String({ description: 'Taint effect.' }),
    timeAdded: Type.Optional(Time('When the taint was added.')),
  },
  { description: 'A taint as it was on the node.' },
);

/**
 * When a node last entered each state (PIKA's states, for other controllers to watch). A fixed
 * set of keys, each one time to the second: bounded whatever the node's history (retries
 * overwrite), and small at thousands of nodes.
 */
export const NodePhaseTimesSchema = Type.Object(
  {
    scheduled: Type.Optional(Time('Admitted: its initial state recorded, capacity given.')),
    cordoned: Type.Optional(Time('Cordoned and tainted; its drain starts.')),
    drained: Type.Optional(Time('Its first drain finished.')),
    actionStarted: Type.Optional(Time('The latest step (spec.actions[i]) was dispatched.')),
    completed: Type.Optional(Time('Succeeded.')),
    failed: Type.Optional(Time('Last failed.')),
    restored: Type.Optional(Time('Returned to its initial state (restore, deletion).')),
    slaExpired: Type.Optional(Time('A drain of it ran past options.drainTimeout.')),
  },
  {
    description:
      'When the node last entered each state (PIKA-style states for other controllers), to ' +
      'the second. Fixed keys, overwritten on a retry: bounded whatever the history.',
  },
);
export type NodePhaseTimes = Static<typeof NodePhaseTimesSchema>;

export const NodeStatusSchema = Type.Object(
  {
    name: Type.String({ description: 'Node name.' }),
    phase: Type.Union(
      NODE_PHASES.map((p) => Type.Literal(p)),
      { description: 'Where this node is in its maintenance.' },
    ),
    currentActionIndex: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Index in spec.actions of the running step.' }),
    ),
    currentActionType: Type.Optional(Type.String({ description: 'Type of the running step.' })),
    actionID: Type.Optional(
      Type.String({
        description: 'ID of the dispatched step: <cr uid>/<node>/<action index>/<attempt>.',
      }),
    ),
    attempt: Type.Optional(Count('Attempt number of the current step.')),
    job: Type.Optional(
      Type.Object(
        {
          pod: Type.String({ description: 'Name of the pod that runs the step.' }),
          namespace: Type.String({ description: "Namespace of the pod (the coordinator's)." }),
          timeoutAt: Time('When the step times out (the pod is then deleted).'),
          execCommand: Type.Optional(
            Type.String({
              description: 'InteractiveShell: the command that opens a shell in the pod.',
            }),
          ),
          releaseCommand: Type.Optional(
            Type.String({
              description:
                'InteractiveShell: the command that releases the step (annotation ' +
                'noma.dev/release on the NodeMaintenance).',
            }),
          ),
        },
        {
          description:
            'The pod running the current step (Script/Run with an image, InteractiveShell).',
        },
      ),
    ),
    drain: Type.Optional(
      Type.Object(
        {
          total: Count('Pods to evict.'),
          evicted: Count('Pods evicted and gone.'),
          pending: Count('Pods still on the node.'),
          blockedBy: Type.Optional(
            Type.Object(
              {
                kind: Type.String({ description: 'PodDisruptionBudget or Pod.' }),
                namespace: Type.Optional(Type.String({ description: 'Namespace.' })),
                name: Type.String({ description: 'Name.' }),
                message: Type.Optional(Type.String({ description: 'Why it blocks.' })),
              },
              { description: 'What keeps the drain from progressing.' },
            ),
          ),
          scope: Type.Optional(
            Type.Union([Type.Literal('GPUPods'), Type.Literal('AllPods')], {
              description:
                'Which drain ran last: GPUPods (before the first step, drainNonGpuPods false) ' +
                'or AllPods (drainNonGpuPods, NoExecute taints, or before Reboot/DeleteNode).',
            }),
          ),
        },
        { description: 'Drain progress.' },
      ),
    ),
    initialState: Type.Optional(
      Type.Object(
        {
          unschedulable: Type.Boolean({
            description:
              'Was the node cordoned before noma (by someone else: a cordon left by an ' +
              "earlier maintenance counts as noma's own and is undone).",
          }),
          taints: Type.Optional(
            Type.Array(NodeTaintSchema, { description: 'Taints before noma changed them.' }),
          ),
          inheritedTaints: Type.Optional(
            Type.Array(NodeTaintSchema, {
              description:
                'Taints an earlier maintenance (without Complete) left on the node: removed ' +
                "with noma's own when the node returns to service.",
            }),
          ),
        },
        { description: 'What the node looked like before noma touched it; restored on cancel.' },
      ),
    ),
    bootIDBeforeReboot: Type.Optional(
      Type.String({ description: 'status.nodeInfo.bootID when the Reboot step started.' }),
    ),
    agentWaitSince: Type.Optional(
      Time(
        "When the current step began waiting for the node's agent to connect; the node fails " +
          'with reason AgentUnavailable once options.agentTimeout has passed since.',
      ),
    ),
    claimReleased: Type.Optional(
      Type.Boolean({
        description:
          'The node finished without a return to service, and its noma.dev/claim annotation ' +
          'was replaced by noma.dev/left-by.',
      }),
    ),
    lastExitCode: Type.Optional(Type.Integer({ description: 'Exit code of the last step.' })),
    outputTail: Type.Optional(Type.String({ description: 'Last bytes of the last step output.' })),
    message: Type.Optional(
      Type.String({
        maxLength: NODE_MESSAGE_MAX_BYTES,
        description: 'Human-readable detail, e.g. why it failed (at most 1 KiB).',
      }),
    ),
    startedAt: Type.Optional(Time('When maintenance of this node started.')),
    completedAt: Type.Optional(Time('When maintenance of this node ended.')),
    lastTransitionTime: Type.Optional(Time('When phase last changed.')),
    phaseTimes: Type.Optional(NodePhaseTimesSchema),
  },
  { description: 'Progress of one node.' },
);
export type NodeStatus = Static<typeof NodeStatusSchema>;

export const StatusSchema = Type.Object(
  {
    phase: Type.Optional(
      Type.Union(
        MAINTENANCE_PHASES.map((p) => Type.Literal(p)),
        {
          description:
            'Pending, Running, Paused (spec.paused), Halted (failure budget spent), Completed ' +
            'or Failed.',
        },
      ),
    ),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'metadata.generation last acted upon.' }),
    ),
    progress: Type.Optional(
      Type.String({ description: 'Finished nodes / selected nodes, e.g. 2/5.' }),
    ),
    currentActionIndex: Type.Optional(
      Type.Integer({ description: 'Index of the active action (the furthest among nodes).' }),
    ),
    currentActionType: Type.Optional(Type.String({ description: 'Type of the active action.' })),
    pendingJobs: Type.Optional(
      Type.Array(Type.String(), { description: 'Names of pods or actions still running.' }),
    ),
    jobTimeoutAt: Type.Optional(Time('When the current step times out.')),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, {
        description: 'Ready, Progressing, Degraded…',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      }),
    ),
    observedNodes: Type.Optional(
      Type.Array(Type.String(), {
        description: 'The nodes selected when the maintenance started (frozen).',
      }),
    ),
    lastAction: Type.Optional(Type.String({ description: 'Most recent action name or type.' })),
    leaderEpoch: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          "The epoch of the coordinator that wrote this status (its leader Lease's transitions). " +
          "It never goes back: a deposed coordinator's late write is refused.",
      }),
    ),
    startedAt: Type.Optional(Time('When the maintenance started.')),
    completedAt: Type.Optional(Time('When the maintenance ended.')),
    nodes: Type.Optional(
      // Atomic, not a map keyed by name: the leader is the only writer, and a map makes the API
      // server track every field of every entry in managedFields (half of a 2000-node object,
      // and most of the cost of each status write).
      Type.Array(NodeStatusSchema, {
        description: 'Per-node progress, one entry per node of observedNodes.',
        'x-kubernetes-list-type': 'atomic',
      }),
    ),
  },
  { description: 'Observed progress, written by the coordinator.' },
);
export type NodeMaintenanceStatus = Static<typeof StatusSchema>;

export const MetadataSchema = Type.Object(
  {
    name: Type.Optional(Type.String()),
    namespace: Type.Optional(Type.String()),
    uid: Type.Optional(Type.String()),
    resourceVersion: Type.Optional(Type.String()),
    generation: Type.Optional(Type.Integer()),
    creationTimestamp: Type.Optional(Type.String()),
    deletionTimestamp: Type.Optional(Type.String()),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
    finalizers: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: true },
);

export const NodeMaintenanceSchema = Type.Object(
  {
    apiVersion: Type.Literal(API_VERSION),
    kind: Type.Literal(KIND),
    metadata: MetadataSchema,
    spec: SpecSchema,
    status: Type.Optional(StatusSchema),
  },
  {
    description:
      'NodeMaintenance takes a set of nodes through maintenance: cordon, taint and drain them, ' +
      'run the listed actions on each, and optionally return them to service or delete them.',
  },
);
export type NodeMaintenance = Static<typeof NodeMaintenanceSchema>;

/** Printer columns of `kubectl get noma`. */
export const PRINTER_COLUMNS = [
  { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
  { name: 'Nodes', type: 'string', jsonPath: '.status.progress', description: 'done/selected' },
  { name: 'Action', type: 'string', jsonPath: '.status.currentActionType' },
  { name: 'Ticket', type: 'string', jsonPath: '.spec.linearTicket' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
] as const;

export type { TSchema };

// The agent ⇄ coordinator protocol: JSON frames over a WebSocket, one message per frame, each
// with the protocol version and a `type` that selects its schema. Both sides run every frame
// they receive through decodeFrame(); a frame that fails is answered with an `error` message and
// counted, never thrown. See docs/protocol.md.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { validate, formatErrors } from './api/validate.js';

export const PROTOCOL_VERSION = 1;
/** Frames above this are refused (ws closes the socket with 1009; decodeFrame says why). */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** What the agent keeps of an action's output, and what it sends in a result. */
export const OUTPUT_KEEP_BYTES = 64 * 1024;
/** What reaches the CR status. */
export const STATUS_TAIL_BYTES = 4 * 1024;
/** The WebSocket path the coordinator serves the link on. */
export const AGENT_LINK_PATH = '/v1/agent';
/** The node the agent claims to speak for; must equal the node its token is bound to. */
export const NODE_HEADER = 'x-noma-node';
/** Close codes of our own (4000–4999 are for applications). */
export const CLOSE_REPLACED = 4001;
export const CLOSE_PROTOCOL = 4002;
/** The connection's credential ended (token expired, bound pod deleted): reconnect, token re-read. */
export const CLOSE_CREDENTIALS = 4003;

const Id = Type.String({ minLength: 1, maxLength: 512 });
const NodeName = Type.String({ minLength: 1, maxLength: 253 });
const Text = (max: number) => Type.String({ maxLength: max });
const Base = { v: Type.Literal(PROTOCOL_VERSION) };

/** What the coordinator asks the agent to run. Only host actions travel over the link. */
export const WireActionSchema = Type.Union([
  Type.Object({
    type: Type.Literal('Script'),
    script: Text(262144),
    args: Type.Array(Text(32768), { maxItems: 256 }),
  }),
  Type.Object({
    type: Type.Literal('Run'),
    command: Type.Array(Text(32768), { minItems: 1, maxItems: 512 }),
  }),
  Type.Object({ type: Type.Literal('Reboot') }),
]);
export type WireAction = Static<typeof WireActionSchema>;

export const ACTION_OUTCOMES = [
  'succeeded',
  'failed',
  'timedOut',
  'cancelled',
  'interrupted',
] as const;
export type ActionOutcomeKind = (typeof ACTION_OUTCOMES)[number];

/** An action ID the agent refuses because its ledger record exists and cannot be read. */
export const LEDGER_UNREADABLE = 'LedgerUnreadable';

export const ActionResultBody = Type.Object({
  id: Id,
  outcome: Type.Union(ACTION_OUTCOMES.map((o) => Type.Literal(o))),
  /**
   * Why, in one word, when the outcome alone does not say it: `LedgerUnreadable` (the node
   * fails with that reason; the message starts with it too). Absent otherwise.
   */
  reason: Type.Optional(Type.String({ maxLength: 64, pattern: '^[A-Za-z]+$' })),
  exitCode: Type.Optional(Type.Integer()),
  /** The last OUTPUT_KEEP_BYTES at most (stdout and stderr interleaved). */
  outputTail: Type.Optional(Text(OUTPUT_KEEP_BYTES * 4)),
  message: Text(4096),
  startedAt: Type.Optional(Type.String({ maxLength: 64 })),
  finishedAt: Type.Optional(Type.String({ maxLength: 64 })),
});
export type ActionResult = Static<typeof ActionResultBody>;

const LedgerState = Type.Union([
  Type.Literal('running'),
  Type.Literal('rebooting'),
  Type.Literal('finished'),
]);

export const MESSAGE_SCHEMAS = {
  // agent → coordinator
  hello: Type.Object({
    ...Base,
    type: Type.Literal('hello'),
    node: NodeName,
    bootID: Text(128),
    version: Text(128),
    /** The agent's GPU inventory as /status shows it; opaque to the protocol. */
    inventory: Type.Union([Type.Null(), Type.Record(Type.String(), Type.Unknown())]),
    /** Actions the agent has run or is running (its ledger), newest first. */
    actions: Type.Array(Type.Object({ id: Id, state: LedgerState }), { maxItems: 1024 }),
  }),
  heartbeat: Type.Object({
    ...Base,
    type: Type.Literal('heartbeat'),
    bootID: Text(128),
    running: Type.Array(Id, { maxItems: 1024 }),
  }),
  'action.progress': Type.Object({
    ...Base,
    type: Type.Literal('action.progress'),
    id: Id,
    state: Type.Union([Type.Literal('running'), Type.Literal('rebooting')]),
    outputTail: Type.Optional(Text(STATUS_TAIL_BYTES * 4)),
  }),
  'action.result': Type.Object({
    ...Base,
    type: Type.Literal('action.result'),
    ...ActionResultBody.properties,
  }),
  // coordinator → agent
  welcome: Type.Object({
    ...Base,
    type: Type.Literal('welcome'),
    node: NodeName,
    heartbeatMs: Type.Integer({ minimum: 100 }),
  }),
  'action.start': Type.Object({
    ...Base,
    type: Type.Literal('action.start'),
    id: Id,
    action: WireActionSchema,
    timeoutMs: Type.Integer({ minimum: 1 }),
    /** Whether an attempt interrupted by an agent restart may be run again. */
    retryable: Type.Boolean(),
  }),
  'action.cancel': Type.Object({ ...Base, type: Type.Literal('action.cancel'), id: Id }),
  // both ways
  error: Type.Object({
    ...Base,
    type: Type.Literal('error'),
    code: Type.Union([
      Type.Literal('bad-frame'),
      Type.Literal('too-large'),
      Type.Literal('unsupported-version'),
      Type.Literal('invalid'),
      Type.Literal('forbidden'),
      Type.Literal('internal'),
    ]),
    message: Text(4096),
    /** The id of the action the failed frame was about, when it could be read. */
    ref: Type.Optional(Id),
  }),
} satisfies Record<string, TSchema>;

export type MessageType = keyof typeof MESSAGE_SCHEMAS;
export type Message = { [K in MessageType]: Static<(typeof MESSAGE_SCHEMAS)[K]> }[MessageType];
export type MessageOf<K extends MessageType> = Extract<Message, { type: K }>;
export type ErrorCode = MessageOf<'error'>['code'];

export const AGENT_SENDS: ReadonlySet<MessageType> = new Set([
  'hello',
  'heartbeat',
  'action.progress',
  'action.result',
  'error',
]);
export const COORDINATOR_SENDS: ReadonlySet<MessageType> = new Set([
  'welcome',
  'action.start',
  'action.cancel',
  'error',
]);

export type Decoded =
  { ok: true; message: Message } | { ok: false; code: ErrorCode; message: string; ref?: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates one received frame. `accept` is what the peer may send: a coordinator
 * accepts only agent messages and the other way round, so neither can be made to act on a
 * message of its own kind.
 */
export function decodeFrame(
  data: Buffer | string,
  accept: ReadonlySet<MessageType>,
  maxBytes = MAX_FRAME_BYTES,
): Decoded {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  if (size > maxBytes) {
    return { ok: false, code: 'too-large', message: `frame of ${size} bytes over ${maxBytes}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'));
  } catch {
    return { ok: false, code: 'bad-frame', message: 'frame is not JSON' };
  }
  if (!isRecord(value)) return { ok: false, code: 'bad-frame', message: 'frame is not an object' };
  const ref = typeof value['id'] === 'string' ? { ref: value['id'].slice(0, 512) } : {};
  if (value['v'] !== PROTOCOL_VERSION) {
    return {
      ok: false,
      code: 'unsupported-version',
      message: `protocol version ${JSON.stringify(value['v'])} is not ${PROTOCOL_VERSION}`,
      ...ref,
    };
  }
  const type = value['type'];
  if (typeof type !== 'string' || !Object.hasOwn(MESSAGE_SCHEMAS, type)) {
    return {
      ok: false,
      code: 'invalid',
      message: `unknown message type ${JSON.stringify(type ?? null).slice(0, 64)}`,
      ...ref,
    };
  }
  if (!accept.has(type as MessageType)) {
    return { ok: false, code: 'invalid', message: `${type} is not accepted here`, ...ref };
  }
  const checked = validate(MESSAGE_SCHEMAS[type as MessageType], value);
  if (!checked.ok) {
    return {
      ok: false,
      code: 'invalid',
      message: `${type}: ${formatErrors(checked.errors.slice(0, 5))}`.slice(0, 4096),
      ...ref,
    };
  }
  return { ok: true, message: checked.value };
}

type Body<K extends MessageType> = Omit<MessageOf<K>, 'v' | 'type'>;

/** Builds a frame; `v` and `type` are filled in so a caller cannot get them wrong. */
export function encode<K extends MessageType>(type: K, body: Body<K>): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, type, ...body });
}

/** The last `maxBytes` of `text` as UTF-8, cut on a character boundary. */
export function tailBytes(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  let start = buf.length - maxBytes;
  // Skip UTF-8 continuation bytes so the tail does not begin inside a character.
  while (start < buf.length && ((buf[start] ?? 0) & 0xc0) === 0x80) start++;
  return buf.subarray(start).toString('utf8');
}

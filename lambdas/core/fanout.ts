import { createHash } from 'node:crypto';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { type KeyRange, keyPosition, rangeShare, splitRange } from './key-ranges.ts';
import { type MembersPage, roomMembersAmong, roomMembersPage } from './room-members.ts';
import { sendToSockets } from './sockets.ts';
import { batchGet, isConditionFailure, N, num, S, storeCall, str } from './store.ts';
import type { ChatMessage } from './wire.ts';

/**
 * How a room's delivery is shaped (docs/reliability.md, "Big rooms"). The defaults come from
 * the cost model of BENCHMARKS.md (12 ms per post, 16 posts at a time per job).
 */
export interface FanoutTuning {
  /**
   * Rooms of at most this many members are posted to by the invocation that got the message,
   * before its ack, as always: 200 posts are 13 waves of 16, about 156 ms, no longer than the
   * queue's extra hop (SendMessageBatch, SQS to Lambda, the worker's reads) would add.
   */
  readonly directMax: number;
  /** Members per job: a job's range is sized to hold about this many (7 waves, about 84 ms). */
  readonly membersPerJob: number;
  /** A job whose range turns out to hold more than this is split again instead of posted. */
  readonly jobMax: number;
  /** Jobs one message starts with at most (a room of 100,000 at 100 a job). */
  readonly maxJobs: number;
  /** Later rounds for sockets whose posts still failed (429, 5xx) after a job's own retries. */
  readonly retryRounds: number;
  /** Delay of the first later round, doubling each round. */
  readonly retryDelayS: number;
}

export const FANOUT_TUNING: FanoutTuning = Object.freeze({
  directMax: 200,
  membersPerJob: 100,
  jobMax: 250,
  maxJobs: 1000,
  retryRounds: 3,
  retryDelayS: 1,
});

type FanoutDeps = Pick<Deps, 'db' | 'tables' | 'api' | 'audit' | 'queue' | 'fanout' | 'clock'>;

const tuningOf = (deps: Pick<Deps, 'fanout'>): FanoutTuning => ({ ...FANOUT_TUNING, ...deps.fanout });

/** One unit of delivery work: post `frame` to the members of one key range of a room (or to `only` these). */
export interface FanoutJob {
  readonly v: 1;
  /** Deterministic from the message and the range: a job delivered twice is still posted once. */
  readonly id: string;
  readonly room: string;
  readonly range: KeyRange;
  /** A later round: these sockets' posts failed retryably. */
  readonly only?: readonly string[];
  readonly round?: number;
  /** The message as every member gets it, already built and numbered. */
  readonly frame: DeliveryFrame;
}

/** A frame delivered to a room: its members get it as it is (encrypted for those with a key). */
export type DeliveryFrame = ChatMessage;

export type RoomDelivery =
  | { readonly mode: 'direct'; readonly delivered: number }
  | { readonly mode: 'queued'; readonly jobs: number };

/** What the message path reads of a room beside its other reads: enough to tell small from big. */
export function readRoomForFanout(deps: FanoutDeps, room: string): Promise<MembersPage> {
  return roomMembersPage(deps, room, {}, tuningOf(deps).directMax);
}

/**
 * Delivers a built message frame to a room read with `readRoomForFanout`. A small room is
 * posted to here, as before. A big one is cut into key ranges sized from the first page
 * (its last key tells how much of the key space `directMax` members fill) and each range goes
 * to the queue as one job; this resolves once every job is enqueued, so the sender's ack
 * waits for the store and the queue, never for the room.
 */
export async function deliverToRoom(
  deps: FanoutDeps,
  room: string,
  first: MembersPage,
  frame: DeliveryFrame,
): Promise<RoomDelivery> {
  const tuning = tuningOf(deps);
  if (!first.more || !deps.queue) {
    // No queue (a function or tool that has none): the whole room from here, as before.
    const members = first.more
      ? (await roomMembersPage(deps, room, {}, Number.POSITIVE_INFINITY)).members
      : first.members;
    const delivery = await sendToSockets(deps, members, frame);
    return { mode: 'direct', delivered: delivery.delivered };
  }
  const parts = partsFor(first, {}, tuning, tuning.maxJobs);
  const jobs = splitRange({}, parts).map((range) => jobFor(frame, room, range));
  await deps.queue.send(jobs.map((job) => ({ body: JSON.stringify(job) })));
  return { mode: 'queued', jobs: jobs.length };
}

/** Whether a room read with `readRoomForFanout` is delivered through the queue (so stored first). */
export function queuesDelivery(deps: Pick<Deps, 'queue'>, first: MembersPage): boolean {
  return first.more && deps.queue !== undefined;
}

/**
 * Stores a message and delivers it. A small room is posted to while the message is stored, as
 * before; a big room's jobs are enqueued only once the store has the message, so no worker
 * delivers a message whose sender then gets an error instead of an ack (and resends it).
 */
export async function storeAndDeliver(
  deps: FanoutDeps,
  room: string,
  first: MembersPage,
  frame: DeliveryFrame,
  store: () => Promise<void>,
): Promise<RoomDelivery> {
  if (queuesDelivery(deps, first)) {
    await store();
    return deliverToRoom(deps, room, first, frame);
  }
  const [delivery] = await Promise.all([deliverToRoom(deps, room, first, frame), store()]);
  return delivery;
}

/** How many parts a range whose first page was full should be cut into: its estimated members / membersPerJob. */
function partsFor(page: MembersPage, range: KeyRange, tuning: FanoutTuning, max: number): number {
  const last = page.members[page.members.length - 1]?.connectionId;
  const lo = range.from === undefined ? 0 : keyPosition(range.from);
  const covered = last === undefined ? 0 : (keyPosition(last) - lo) / Math.max(rangeShare(range), 1e-12);
  const estimate = (page.members.length + 1) / Math.min(1, Math.max(covered, 1e-6));
  return Math.min(max, Math.max(2, Math.ceil(estimate / tuning.membersPerJob)));
}

function jobFor(frame: DeliveryFrame, room: string, range: KeyRange): FanoutJob {
  return { v: 1, id: digest(frame.messageId, room, range.from ?? '', range.to ?? ''), room, range, frame };
}

const digest = (...parts: string[]) =>
  createHash('sha256').update(parts.join('\u0000')).digest('base64url').slice(0, 32);

/** Parses a queued job; throws on anything else (the record then ends in the dead-letter queue). */
export function parseJob(body: string): FanoutJob {
  const job = JSON.parse(body) as Partial<FanoutJob> | null;
  const ok =
    job !== null &&
    typeof job === 'object' &&
    job.v === 1 &&
    typeof job.id === 'string' &&
    typeof job.room === 'string' &&
    typeof job.range === 'object' &&
    job.range !== null &&
    typeof job.frame === 'object' &&
    job.frame !== null &&
    typeof job.frame.messageId === 'string' &&
    typeof job.frame.type === 'string' &&
    (job.only === undefined || (Array.isArray(job.only) && job.only.every((x) => typeof x === 'string')));
  if (!ok) throw new Error('not a fan-out job');
  return job as FanoutJob;
}

interface Claim {
  readonly mine: boolean;
  readonly role: 'post' | 'split';
  readonly parts: number;
}

/** Claims stay a day: far past any redelivery of the job (the queue's visibility timeouts and retention). */
const CLAIM_TTL_S = 86_400;

/**
 * Takes a job for this run with a conditional PutItem on `fanout#<job id>`: of every delivery
 * of one job (SQS delivers at least once, and a failed batch comes back), one run claims it and
 * records what it does with the range (post to it, or split it in `parts`), decided from the
 * range it read. A later run follows that record instead of its own read: it never posts a
 * range twice, and it finishes a split that failed half-way by enqueuing the same children.
 */
async function claim(deps: FanoutDeps, jobId: string, role: Claim['role'], parts: number): Promise<Claim> {
  const key = { id: S(`fanout#${jobId}`) };
  try {
    await storeCall(
      'claim fan-out job',
      (db) =>
        db.send(
          new PutItemCommand({
            TableName: deps.tables.counters,
            Item: {
              ...key,
              role: S(role),
              parts: N(parts),
              expiresAt: N(Math.floor(deps.clock.now() / 1000) + CLAIM_TTL_S),
            },
            ConditionExpression: 'attribute_not_exists(id)',
          }),
        ),
      deps.db,
    );
    return { mine: true, role, parts };
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    const [row] = await batchGet(deps.db, [{ table: deps.tables.counters, key }], { consistent: true });
    return {
      mine: false,
      role: str(row, 'role') === 'split' ? 'split' : 'post',
      parts: num(row, 'parts') ?? 0,
    };
  }
}

/**
 * Runs one job (a fan-out worker's record). It throws only before anything was posted, so the
 * record may be tried again: reads, the claim, and a split's enqueue. Posts that still fail
 * after their retries go back to the queue as a later round for those sockets alone (a job of
 * its own, claimed like any other), and what fails after the last round is reported in
 * `delivery.failed`; the record itself then succeeds, since trying it again would post twice.
 */
export async function runJob(deps: FanoutDeps, job: FanoutJob): Promise<{ posted: number; split: number }> {
  const tuning = tuningOf(deps);
  if (job.only) {
    const members = await roomMembersAmong(deps, job.room, job.only);
    const taken = await claim(deps, job.id, 'post', 0);
    if (!taken.mine) return { posted: 0, split: 0 };
    return { posted: await post(deps, job, members, tuning), split: 0 };
  }
  const page = await roomMembersPage(deps, job.room, job.range, tuning.jobMax);
  const parts = page.more ? partsFor(page, job.range, tuning, 64) : 0;
  const children = page.more ? splitRange(job.range, parts) : [];
  const split = children.length > 1;
  const taken = await claim(deps, job.id, split ? 'split' : 'post', split ? parts : 0);
  if (taken.role === 'split') {
    const again = taken.mine ? children : splitRange(job.range, taken.parts);
    await deps.queue?.send(
      again.map((range) => ({ body: JSON.stringify(jobFor(job.frame, job.room, range)) })),
    );
    return { posted: 0, split: again.length };
  }
  if (!taken.mine) return { posted: 0, split: 0 };
  // A range too narrow to cut (never for random ids) is read whole by its one claimant.
  const members = page.more
    ? (await roomMembersPage(deps, job.room, job.range, Number.POSITIVE_INFINITY)).members
    : page.members;
  return { posted: await post(deps, job, members, tuning), split: 0 };
}

async function post(
  deps: FanoutDeps,
  job: FanoutJob,
  members: Parameters<typeof sendToSockets>[1],
  tuning: FanoutTuning,
): Promise<number> {
  const round = job.round ?? 0;
  const last = round >= tuning.retryRounds || !deps.queue;
  const delivery = await sendToSockets(deps, members, job.frame, { quiet: !last });
  const later = last ? [] : delivery.retryable;
  // Final refusals (403, 413) are reported now; the retryable ones after their last round.
  if (!last && delivery.failed > later.length) reportFailed(deps, job, members.length, delivery, undefined);
  if (later.length === 0) return delivery.delivered;
  const next: FanoutJob = {
    ...job,
    id: digest(job.id, 'round', String(round + 1)),
    only: later,
    round: round + 1,
  };
  try {
    await deps.queue?.send([{ body: JSON.stringify(next), delayS: tuning.retryDelayS * 2 ** round }]);
  } catch (err) {
    reportFailed(deps, job, members.length, delivery, (err as Error).name);
  }
  return delivery.delivered;
}

function reportFailed(
  deps: FanoutDeps,
  job: FanoutJob,
  count: number,
  delivery: Awaited<ReturnType<typeof sendToSockets>>,
  errorName: string | undefined,
): void {
  deps.audit('warn', 'delivery.failed', {
    reason: job.frame.type,
    room: job.room,
    count,
    delivered: delivery.delivered,
    failed: delivery.failed,
    retries: delivery.retries,
    errorName,
  });
}

import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { BatchWriteItemCommand, type WriteRequest } from '@aws-sdk/client-dynamodb';
import type { Audit } from '../lambdas/core/audit.ts';
import { systemClock } from '../lambdas/core/clock.ts';
import type { ConnectionsApi, Deps } from '../lambdas/core/deps.ts';
import { FANOUT_TUNING, readRoomForFanout, storeAndDeliver } from '../lambdas/core/fanout.ts';
import { SOCKET_TTL_S } from '../lambdas/core/socket-rows.ts';
import { localTableNames } from '../lambdas/core/tables.ts';
import type { ChatMessage } from '../lambdas/core/wire.ts';
import { makeFanoutWorkerHandler } from '../lambdas/fanout-worker.ts';
import { FUNCTIONS } from '../lambdas/functions.ts';
import { FANOUT_BATCH_SIZE, FANOUT_MAX_CONCURRENCY } from '../lib/fanout-queue.ts';
import { ensureTables, localDynamoClient, startDynalite } from '../local/dynamo.ts';
import { localQueue } from '../local/sqs-queue.ts';
import { sleep } from '../test/kit/wait.ts';
import { PRICES } from './cost.ts';
import { fmt, mapLimit, now, progress, type Section, table, usd } from './support.ts';

/** What the model assumes that this machine cannot measure (in-region latencies, Lambda's CPU share). */
export const SCALE_ASSUMPTIONS = {
  dynamoRoundTripMs: 6,
  postMs: 12, // one PostToConnection, as the cost model assumes
  postsAtOnce: 16, // per job (lambdas/core/sockets.ts FANOUT_CONCURRENCY)
  sendBatchMs: 10, // one SQS SendMessageBatch
  queueHopMs: 50, // from SendMessageBatch answered to a warm worker's invocation (event source polling)
  postCpuMs: 0.106, // CPU of one signed post at a full vCPU (BENCHMARKS.md, "Posting")
  sendBatchCpuMs: 0.1, // signing one SendMessageBatch
  fullVcpuMb: 1769, // Lambda gives one vCPU at 1,769 MB, in proportion below
  defaultMemoryMb: 256,
  sqsRequest: 0.4 / 1e6, // per request (64 KB chunks), standard queue
  itemBytes: 100, // one membership row read by a worker's Query
} as const;

export interface ScaleRow {
  readonly members: number;
  readonly mode: 'direct' | 'queued';
  readonly ackMs: number;
  readonly lastMs: number;
  readonly jobs: number;
  readonly invocations: number;
  readonly postsPerWorker: number;
  readonly gbS: number;
  readonly usdPerMillion: number;
}

const workerSpec = FUNCTIONS.find((f) => f.fanoutQueue === 'work');
const WORKER_MB = workerSpec?.memoryMb ?? 256;

/**
 * The model of one message to a room of `members`, from the code's own shape (FANOUT_TUNING, the
 * queue's batch size and concurrency) and SCALE_ASSUMPTIONS: the ack, the last delivery, the work
 * per worker, GB-seconds and dollars per million such messages.
 */
export function modelMessage(members: number): ScaleRow {
  const a = SCALE_ASSUMPTIONS;
  const t = FANOUT_TUNING;
  const vcpu = (mb: number) => Math.min(1, mb / a.fullVcpuMb);
  const posting = (posts: number, jobs: number, mb: number) =>
    Math.max(Math.ceil(posts / jobs / a.postsAtOnce) * a.postMs, (posts * a.postCpuMs) / vcpu(mb));
  const front = 2 * a.dynamoRoundTripMs; // round trips 1 and 2 of the message path
  const apiGateway = (1 + members + 1) * PRICES.wsMessage; // in, deliveries, the ack
  const lambda = (ms: number, mb: number) =>
    PRICES.lambdaRequest + (ms / 1000) * (mb / 1024) * PRICES.lambdaGbSecondArm;
  if (members <= t.directMax) {
    const ms = front + Math.max(a.dynamoRoundTripMs, posting(members, 1, a.defaultMemoryMb));
    const gbS = (ms / 1000) * (a.defaultMemoryMb / 1024);
    const dollars = apiGateway + lambda(ms, a.defaultMemoryMb) + 6 * PRICES.readUnit + 2 * PRICES.writeUnit;
    return {
      members,
      mode: 'direct',
      ackMs: ms,
      lastMs: ms,
      jobs: 0,
      invocations: 0,
      postsPerWorker: members,
      gbS,
      usdPerMillion: dollars * 1e6,
    };
  }
  const jobs = Math.min(t.maxJobs, Math.max(2, Math.ceil(members / t.membersPerJob)));
  const sends = Math.ceil(jobs / 10);
  const ackMs =
    front + a.dynamoRoundTripMs + a.sendBatchMs + (sends * a.sendBatchCpuMs) / vcpu(a.defaultMemoryMb);
  const invocations = Math.ceil(jobs / FANOUT_BATCH_SIZE);
  const postsPerWorker = Math.ceil(members / invocations);
  const workerMs =
    2 * a.dynamoRoundTripMs + posting(postsPerWorker, Math.min(jobs, FANOUT_BATCH_SIZE), WORKER_MB);
  const waves = Math.ceil(invocations / FANOUT_MAX_CONCURRENCY);
  const lastMs = ackMs + waves * (a.queueHopMs + workerMs);
  const gbS =
    (ackMs / 1000) * (a.defaultMemoryMb / 1024) + invocations * (workerMs / 1000) * (WORKER_MB / 1024);
  const perJobRru = Math.ceil((t.membersPerJob * a.itemBytes) / 4096) / 2; // eventually consistent Query
  const dollars =
    apiGateway +
    lambda(ackMs, a.defaultMemoryMb) +
    invocations * lambda(workerMs, WORKER_MB) +
    (6 + jobs * perJobRru) * PRICES.readUnit +
    (2 + jobs) * PRICES.writeUnit + // the message's rows, then one claim per job
    (sends + 2 * invocations) * a.sqsRequest; // SendMessageBatch, then the poller's receive and delete
  return {
    members,
    mode: 'queued',
    ackMs,
    lastMs,
    jobs,
    invocations,
    postsPerWorker,
    gbS,
    usdPerMillion: dollars * 1e6,
  };
}

export interface MeasuredRow {
  readonly members: number;
  readonly mode: string;
  readonly ackMs: number;
  readonly lastMs: number;
  readonly jobs: number;
  readonly invocations: number;
  readonly maxPostsPerWorker: number;
  readonly deliveredOnce: number;
  readonly doubled: number;
}

/**
 * The real planner and worker (lambdas/core/fanout.ts, lambdas/fanout-worker.ts) behind the local
 * queue, over dynalite, with a simulated `@connections` that takes 12 ms per post: every member is
 * counted, so a loss or a double shows.
 */
export async function measureScale(sizes: readonly number[]): Promise<MeasuredRow[]> {
  const dynamo = await startDynalite({});
  const db = localDynamoClient(dynamo.endpoint);
  const tables = localTableNames('scale-');
  await ensureTables(db, tables);
  const rows: MeasuredRow[] = [];
  try {
    for (const members of sizes) {
      const row = await measureRoom(db, tables, members);
      rows.push(row);
      progress(
        `fan-out scale: ${fmt(members)} members, ${row.mode}, last delivery after ${fmt(row.lastMs)} ms`,
      );
    }
  } finally {
    db.destroy();
    await dynamo.close();
  }
  return rows;
}

type Db = ReturnType<typeof localDynamoClient>;
type Tables = ReturnType<typeof localTableNames>;

/** One message to a room of `members`, from the first read to the queue drained. */
async function measureRoom(db: Db, tables: Tables, members: number): Promise<MeasuredRow> {
  const room = `scale-${members}`;
  const ids = await seedMembers(db, tables, room, members);
  const posts = countingApi();
  const workers = countingQueue();
  const audit: Audit = () => {};
  const deps = {
    db,
    tables,
    api: posts.api,
    audit,
    queue: workers.queue,
    clock: systemClock,
  } as unknown as Deps;
  workers.bind(makeFanoutWorkerHandler(deps));
  const frame: ChatMessage = {
    type: 'message',
    room,
    from: 'bench',
    text: 'hi',
    ts: Date.now(),
    messageId: randomBytes(8).toString('hex'),
    epoch: 'bench',
    seq: 1,
  };
  const t0 = now();
  const first = await readRoomForFanout(deps, room);
  const delivery = await storeAndDeliver(deps, room, first, frame, () =>
    sleep(SCALE_ASSUMPTIONS.dynamoRoundTripMs),
  );
  const ackMs = now() - t0;
  await workers.queue.drained();
  const direct = delivery.mode === 'direct';
  const row: MeasuredRow = {
    members,
    mode: delivery.mode,
    ackMs,
    lastMs: posts.lastAt - t0,
    jobs: direct ? 0 : delivery.jobs,
    invocations: workers.invocations,
    maxPostsPerWorker: direct ? members : workers.maxPosts,
    deliveredOnce: ids.filter((id) => posts.got.get(id) === 1).length,
    doubled: ids.filter((id) => (posts.got.get(id) ?? 0) > 1).length,
  };
  await workers.queue.close();
  return row;
}

/** `members` membership rows of `room`, written in batches of 25; returns their connection ids. */
async function seedMembers(db: Db, tables: Tables, room: string, members: number): Promise<string[]> {
  const ids = Array.from({ length: members }, () => `${randomBytes(11).toString('base64url')}=`);
  const expiresAt = { N: String(Math.floor(Date.now() / 1000) + SOCKET_TTL_S) };
  const writes: WriteRequest[][] = [];
  for (let i = 0; i < ids.length; i += 25) {
    writes.push(
      ids.slice(i, i + 25).map((id, j) => ({
        PutRequest: {
          Item: { pk: { S: `room#${room}` }, sk: { S: id }, memberName: { S: `u${i + j}` }, expiresAt },
        },
      })),
    );
  }
  await mapLimit(writes, 4, async (batch) => {
    let pending = batch;
    while (pending.length > 0) {
      const out = await db.send(
        new BatchWriteItemCommand({ RequestItems: { [tables.connections]: pending } }),
      );
      pending = out.UnprocessedItems?.[tables.connections] ?? [];
    }
  });
  return ids;
}

// Posts counted per worker invocation, across its awaits.
const invocation = new AsyncLocalStorage<{ posts: number }>();

/** A simulated `@connections` that takes 12 ms a post and counts what each connection got. */
function countingApi(): { api: ConnectionsApi; got: Map<string, number>; lastAt: number } {
  const counts = {
    got: new Map<string, number>(),
    lastAt: 0,
    api: {
      post: async (id: string) => {
        await sleep(SCALE_ASSUMPTIONS.postMs);
        counts.got.set(id, (counts.got.get(id) ?? 0) + 1);
        const counter = invocation.getStore();
        if (counter) counter.posts++;
        counts.lastAt = now();
        return true;
      },
      close: async () => true,
      exists: async () => true,
    } as ConnectionsApi,
  };
  return counts;
}

type Worker = ReturnType<typeof makeFanoutWorkerHandler>;

/** The local queue at the stack's batch size and concurrency, counting invocations and the most posts in one. */
function countingQueue() {
  let worker: Worker | undefined;
  const counts = {
    invocations: 0,
    maxPosts: 0,
    queue: localQueue({
      batchSize: FANOUT_BATCH_SIZE,
      maxConcurrency: FANOUT_MAX_CONCURRENCY,
      handler: async (event) => {
        counts.invocations++;
        const counter = { posts: 0 };
        const out = await invocation.run(counter, () => (worker as Worker)(event));
        counts.maxPosts = Math.max(counts.maxPosts, counter.posts);
        return out;
      },
    }),
    /** The worker is made from deps that hold this queue, so it comes in after. */
    bind: (w: Worker) => {
      worker = w;
    },
  };
  return counts;
}

/** The scale table: modelled for 50 to 100,000 members, measured in process for the sizes given. */
export async function fanoutScale(measured: readonly number[] = [50, 1_000, 10_000]): Promise<{
  section: Section;
  model: ScaleRow[];
  measured: MeasuredRow[];
}> {
  const model = [50, FANOUT_TUNING.directMax, FANOUT_TUNING.directMax + 1, 1_000, 10_000, 100_000].map(
    modelMessage,
  );
  const runs = await measureScale(measured);
  const markdown = [
    '**Model** (one message; times from the assumptions below, counts from the code):',
    '',
    modelTable(model),
    '',
    growthNote(model),
    '',
    scaleAssumptionsNote(),
    '',
    '**Measured in process** (the real planner, worker and local queue over dynalite, `@connections` simulated at 12 ms a post, every member counted):',
    '',
    measuredTable(runs),
    '',
    "Here one dynalite process on this 2-core machine serves every worker's Query in turn, so the measured last delivery grows with the room where DynamoDB would not; the counts (jobs, invocations, posts per invocation, exactly once) are the code's own.",
  ].join('\n');
  return {
    section: {
      title: 'Fan-out at scale: big rooms in parallel',
      markdown,
      failures: scaleFailures(model, runs),
    },
    model,
    measured: runs,
  };
}

/** The model's 1,000 and 10,000 members, which the budget compares. */
function thousands(model: readonly ScaleRow[]) {
  return { m1k: model.find((r) => r.members === 1_000), m10k: model.find((r) => r.members === 10_000) };
}

/** Broken budgets: 10,000 members over twice 1,000's last delivery, or any member missed or doubled. */
function scaleFailures(model: readonly ScaleRow[], runs: readonly MeasuredRow[]): string[] {
  const failures: string[] = [];
  const { m1k, m10k } = thousands(model);
  if (m1k && m10k && m10k.lastMs > 2 * m1k.lastMs)
    failures.push(
      `10,000 members' last delivery (${fmt(m10k.lastMs)} ms) is over twice 1,000's (${fmt(m1k.lastMs)} ms)`,
    );
  for (const r of runs)
    if (r.deliveredOnce !== r.members || r.doubled > 0)
      failures.push(`${fmt(r.members)} members: ${r.deliveredOnce} delivered once, ${r.doubled} doubled`);
  return failures;
}

function modelTable(model: readonly ScaleRow[]): string {
  return table(
    [
      'members',
      'path',
      'sender’s ack ms',
      'last delivery ms',
      'jobs',
      'worker invocations',
      'posts per worker',
      'Lambda GB-s',
      '$ per million messages',
    ],
    model.map((r) => [
      fmt(r.members),
      r.mode === 'direct' ? 'direct (in $default)' : 'queued (SQS workers)',
      fmt(r.ackMs),
      fmt(r.lastMs),
      r.jobs || '—',
      r.invocations || '—',
      fmt(r.postsPerWorker),
      fmt(r.gbS, 3),
      usd(r.usdPerMillion),
    ]),
  );
}

function growthNote(model: readonly ScaleRow[]): string {
  const { m1k, m10k } = thousands(model);
  return m1k && m10k
    ? `10,000 members' last delivery is **${fmt(m10k.lastMs / m1k.lastMs, 2)}×** 1,000's (budget ≤ 2×): the jobs grow with the room, each stays at about ${FANOUT_TUNING.membersPerJob} members, and the workers run side by side (up to ${FANOUT_MAX_CONCURRENCY} invocations of ${FANOUT_BATCH_SIZE} jobs). Before, one \`$default\` posted to the whole room, 16 at a time, and its sender waited for all of it: ${fmt(Math.ceil(10_000 / 16) * 12)} ms of posting for 10,000, and the 10 s timeout cut rooms of about 13,000.`
    : '';
}

function scaleAssumptionsNote(): string {
  const a = SCALE_ASSUMPTIONS;
  const t = FANOUT_TUNING;
  return (
    `Assumptions: ${a.dynamoRoundTripMs} ms per DynamoDB round trip, ${a.postMs} ms per PostToConnection and ${a.postsAtOnce} at a time per job, ` +
    `${a.postCpuMs} ms of CPU per signed post at a full vCPU (the posting measurement), Lambda's CPU in proportion to memory ` +
    `(1 vCPU at ${a.fullVcpuMb} MB; \`$default\` ${a.defaultMemoryMb} MB, the worker ${WORKER_MB} MB), ${a.sendBatchMs} ms per SQS ` +
    `SendMessageBatch, ${a.queueHopMs} ms from the enqueue to a warm worker (the event source's pollers already scaled: a cold ` +
    `burst ramps up by about 300 concurrent invocations a minute), full batches of ${FANOUT_BATCH_SIZE} jobs, ${a.itemBytes}-byte membership ` +
    `rows. Rooms of at most ${t.directMax} members take the direct path; above, ${t.membersPerJob} members a job (at most ${t.maxJobs} ` +
    `jobs to start, then a job over ${t.jobMax} splits itself). The ack waits for round trips 1 and 2, the store and the enqueue. ` +
    `Dollars: API Gateway (${'$'}1 per million messages: in, each delivery, the ack) is nearly all of it; then Lambda (requests and ` +
    `GB-s), DynamoDB (the message's rows, each job's Query and claim) and SQS (${'$'}0.40 per million requests).`
  );
}

function measuredTable(runs: readonly MeasuredRow[]): string {
  return table(
    [
      'members',
      'path',
      'ack ms',
      'last delivery ms',
      'jobs',
      'worker invocations',
      'most posts in one invocation',
      'delivered exactly once',
      'doubled',
    ],
    runs.map((r) => [
      fmt(r.members),
      r.mode,
      fmt(r.ackMs),
      fmt(r.lastMs),
      r.jobs || '—',
      r.invocations || '—',
      fmt(r.maxPostsPerWorker),
      `${fmt(r.deliveredOnce)} / ${fmt(r.members)}`,
      r.doubled,
    ]),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { section } = await fanoutScale();
  process.stdout.write(`\n## ${section.title}\n\n${section.markdown}\n`);
  if (section.failures.length > 0) process.exitCode = 1;
}

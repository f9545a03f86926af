import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { roomMembers } from '../lambdas/core/room-members.ts';
import { issueAccessToken } from '../lambdas/core/tokens.ts';
import { localConfig } from '../local/config.ts';
import { type LocalSystem, startLocal } from '../local/system.ts';
import { sleep } from '../test/kit/wait.ts';
import { LoadSockets, type Sock } from './load-sockets.ts';
import { fmt, mapLimit, percentile, table } from './support.ts';

/**
 * `npm run load`: many sockets of many users in several rooms against the local system,
 * the sweeper at its shortest interval (1 s), sockets leaving, rejoining and reconnecting
 * while every user sends. Checks, per socket, that every message of its room sent while
 * it was a member arrived exactly once and nothing arrived twice, that no open socket lost
 * its membership, and that memory comes back near its baseline. A small run of the same
 * code is part of `npm test` (test/integration/load.test.ts).
 */
export interface LoadOptions {
  readonly users: number;
  readonly socketsPerUser: number;
  readonly rooms: number;
  readonly messagesPerUser: number;
  /** Sweeper period, seconds (1, the shortest, by default). */
  readonly sweepIntervalS?: number;
  /** Progress lines (none by default). */
  readonly progress?: (line: string) => void;
}

export interface LoadReport {
  readonly connections: number;
  readonly reconnects: number;
  readonly rejoins: number;
  readonly messages: number;
  readonly deliveries: number;
  readonly deliveriesPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly sweeps: number;
  /** `delivery.failed` lines logged (payloads some member missed after retries). */
  readonly deliveryFailed: number;
  readonly baselineHeapMb: number;
  /** Peak heap while sockets joined and sent; `peakHeapMb` also covers the teardown, when every socket leaves at once. */
  readonly trafficPeakHeapMb: number;
  readonly peakHeapMb: number;
  readonly peakRssMb: number;
  readonly afterHeapMb: number;
  readonly seconds: number;
  /** Every broken promise, one line each; empty when nothing was lost, doubled or kept. */
  readonly problems: readonly string[];
}

interface Sent {
  readonly room: string;
  readonly start: number;
  ack: number;
}

const MB = 1024 * 1024;
const now = () => performance.now();
const gc = (globalThis as { gc?: () => void }).gc;

function heapMb(): number {
  gc?.();
  return process.memoryUsage().heapUsed / MB;
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const say = options.progress ?? (() => {});
  const started = now();
  const audit: string[] = [];
  const system = await startLoadSystem(options, audit);
  const posts = watchPosts(system);
  const memory = sampleMemory();
  try {
    const baselineHeapMb = heapMb();
    const problems: string[] = [];
    const sockets = new LoadSockets(system.wsUrl, await issueTokens(system, options.users), problems);
    const socks = await openAll(sockets, options, say);
    const sent = new Map<string, Sent>();
    const t1 = now();
    await sendWhileChurning({ sockets, socks, sent }, options.messagesPerUser, options.users);
    say(`load: ${sent.size} messages sent in ${fmt((now() - t1) / 1000)} s`);
    await awaitOwed(socks, sent);
    const sendSeconds = (now() - t1) / 1000;
    const deliveries = checkDeliveries(socks, sent, problems);
    await checkMemberships(system, sockets, socks, options.rooms);
    const { sweeps, deliveryFailed } = auditCounts(audit, problems);
    const trafficPeakHeapMb = memory.peakHeap;
    await sockets.closeAll(socks);
    await awaitCleanup(system, options.rooms, posts, problems);
    const { counts, latency } = letGo(sockets, socks, sent);
    const afterHeapMb = await heapAfter(baselineHeapMb, problems);
    return {
      ...counts,
      deliveries,
      deliveriesPerS: deliveries / sendSeconds,
      ...latency,
      sweeps,
      deliveryFailed,
      baselineHeapMb,
      trafficPeakHeapMb,
      peakHeapMb: memory.peakHeap,
      peakRssMb: memory.peakRss,
      afterHeapMb,
      seconds: (now() - started) / 1000,
      problems,
    };
  } finally {
    memory.stop();
    await system.close();
  }
}

/** The local system in memory, the sweeper at the run's interval; its audit lines of interest go to `audit`. */
function startLoadSystem(options: LoadOptions, audit: string[]): Promise<LocalSystem> {
  return startLocal(
    localConfig({
      DATA_DIR: ':memory:',
      PORT: '0',
      WS_PORT: '0',
      SWEEP_INTERVAL_S: String(options.sweepIntervalS ?? 1),
      RATE_LIMIT_MAX: '100000',
      MAX_CONNECTIONS_PER_USER: String(options.socketsPerUser * 2),
    }),
    {
      write: (line) => {
        if (line.includes('"sweep.run"') || line.includes('"delivery.failed"') || line.includes('"error"'))
          audit.push(line);
      },
    },
  );
}

interface Posts {
  /** Posts in flight. */
  posting: number;
  /** When the last one ended. */
  lastPost: number;
}

/** Counts posts to sockets: the system is quiet when none has run for a while. */
function watchPosts(system: LocalSystem): Posts {
  const posts: Posts = { posting: 0, lastPost: now() };
  const api = system.deps.api;
  if (api) {
    const post = api.post.bind(api);
    (api as { post: typeof post }).post = async (id, data) => {
      posts.posting++;
      try {
        return await post(id, data);
      } finally {
        posts.posting--;
        posts.lastPost = now();
      }
    };
  }
  return posts;
}

/** Samples heap and RSS every 100 ms and keeps the peaks, MB. */
function sampleMemory(): { peakHeap: number; peakRss: number; stop: () => void } {
  const memory = { peakHeap: 0, peakRss: 0, stop: () => clearInterval(sampler) };
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    memory.peakHeap = Math.max(memory.peakHeap, m.heapUsed / MB);
    memory.peakRss = Math.max(memory.peakRss, m.rss / MB);
  }, 100);
  return memory;
}

/** One access token per user, `load-<u>`. */
function issueTokens(system: LocalSystem, users: number): Promise<string[]> {
  return mapLimit(
    Array.from({ length: users }, (_, u) => u),
    8,
    async (u) =>
      (
        await issueAccessToken(system.deps, {
          sub: `load-${u}`,
          username: `load${u}`,
          roles: ['user'],
          sid: randomUUID(),
        })
      ).token,
  );
}

/** 1. Every socket opens and joins its room, the sweeper running all along. */
async function openAll(
  sockets: LoadSockets,
  options: LoadOptions,
  say: (line: string) => void,
): Promise<Sock[]> {
  const roomOf = (user: number, i: number) => `load-${(user + i) % options.rooms}`;
  const plan = Array.from({ length: options.users * options.socketsPerUser }, (_, k) => ({
    user: k % options.users,
    index: Math.floor(k / options.users),
  }));
  const t0 = now();
  const socks = await mapLimit(plan, 16, ({ user, index }) =>
    // One socket of each user churns; the others stay from start to end.
    sockets.openAndJoin(
      user,
      roomOf(user, index),
      index === options.socketsPerUser - 1 && options.socketsPerUser > 1,
    ),
  );
  say(`load: ${socks.length} sockets open and joined in ${fmt((now() - t0) / 1000)} s`);
  return socks;
}

/** The sockets, and the messages acknowledged to them (messageId -> when sent and acknowledged). */
interface Traffic {
  readonly sockets: LoadSockets;
  readonly socks: readonly Sock[];
  readonly sent: Map<string, Sent>;
}

/** 2. Every user sends from its steady sockets, while churners leave, rejoin and reconnect. */
async function sendWhileChurning(traffic: Traffic, messagesPerUser: number, users: number): Promise<void> {
  const { sockets, socks } = traffic;
  let sending = true;
  const churners = socks.filter((s) => s.churner);
  // Ten churners at a time, each in turn leaving and rejoining, or closing and reconnecting.
  const churn = Promise.all(
    Array.from({ length: Math.min(10, churners.length) }, async (_, lane) => {
      for (let turn = 0; sending; turn++) {
        const mine = churners.filter((_, i) => i % 10 === lane);
        const sock = mine[turn % mine.length] as Sock;
        await sockets.churnOne(sock, turn + lane);
        await sleep(5);
      }
    }),
  );
  await mapLimit(
    Array.from({ length: users }, (_, u) => u),
    users,
    (u) => sendAsUser(traffic, u, messagesPerUser),
  );
  sending = false;
  await churn;
}

/** User `u` sends its messages in turn over its steady sockets, noting each acknowledged one in `sent`. */
async function sendAsUser(
  { sockets, socks, sent }: Traffic,
  u: number,
  messagesPerUser: number,
): Promise<void> {
  const mine = socks.filter((s) => s.user === u && !s.churner);
  for (let i = 0; i < messagesPerUser; i++) {
    const sock = mine[i % mine.length] as Sock;
    const start = now();
    const ack = await sockets.request(sock, {
      type: 'message',
      room: sock.room,
      text: `m${u}.${i}@${Date.now()}`,
    });
    if (ack.type !== 'ack' || typeof ack.messageId !== 'string') {
      sockets.problem(`a message was not acknowledged: ${JSON.stringify(ack)}`);
      continue;
    }
    sent.set(ack.messageId, { room: sock.room, start, ack: now() });
  }
}

/** The messages a socket is owed: those of its room sent and acknowledged while it was a member. */
function owed(sock: Sock, sent: ReadonlyMap<string, Sent>): [string, Sent][] {
  return [...sent].filter(
    ([, m]) => m.room === sock.room && sock.spans.some((s) => m.start >= s.from && m.ack <= s.to),
  );
}

/** 3. Waits (up to a minute) for what is owed. */
async function awaitOwed(socks: readonly Sock[], sent: ReadonlyMap<string, Sent>): Promise<void> {
  const deadline = now() + 60_000;
  while (now() < deadline && socks.some((s) => owed(s, sent).some(([id]) => !s.got.has(id)))) await sleep(50);
}

/** ... then checks every socket: each owed message once, nothing unacknowledged. Returns the deliveries. */
function checkDeliveries(
  socks: readonly Sock[],
  sent: ReadonlyMap<string, Sent>,
  problems: string[],
): number {
  let deliveries = 0;
  for (const sock of socks) {
    for (const [id] of owed(sock, sent)) {
      if (!sock.got.has(id)) problems.push(`message ${id} of ${sock.room} never reached a member socket`);
    }
    for (const [id, times] of sock.got) {
      deliveries += times;
      if (times > 1) problems.push(`message ${id} arrived ${times} times at one socket`);
      if (!sent.has(id)) problems.push(`message ${id} arrived but was never acknowledged`);
    }
  }
  return deliveries;
}

/** 4. No open socket lost its membership: the rows say so, and one more message per room reaches them all. */
async function checkMemberships(
  system: LocalSystem,
  sockets: LoadSockets,
  socks: readonly Sock[],
  rooms: number,
): Promise<void> {
  for (let r = 0; r < rooms; r++) {
    const room = `load-${r}`;
    const inRoom = socks.filter((s) => s.room === room);
    const rows = await roomMembers(system.deps, room);
    if (rows.length !== inRoom.length)
      sockets.problem(`${room} has ${rows.length} membership rows for ${inRoom.length} open member sockets`);
    const from = inRoom.find((s) => !s.churner);
    if (!from) continue;
    const ack = await sockets.request(from, { type: 'message', room, text: `last@${Date.now()}` });
    const id = String(ack.messageId);
    const end = now() + 5000;
    while (now() < end && inRoom.some((s) => !s.got.has(id))) await sleep(20);
    const missing = inRoom.filter((s) => !s.got.has(id)).length;
    if (missing > 0) sockets.problem(`${missing} open sockets of ${room} are no longer in it`);
  }
}

/** Sweeps run and `delivery.failed` lines, from the audit log; no sweep or any failed delivery is a problem. */
function auditCounts(
  audit: readonly string[],
  problems: string[],
): { sweeps: number; deliveryFailed: number } {
  const sweeps = audit.filter((l) => l.includes('"sweep.run"')).length;
  if (sweeps === 0) problems.push('the sweeper never ran');
  const deliveryFailed = audit.filter((l) => l.includes('"delivery.failed"')).length;
  if (deliveryFailed > 0) problems.push(`${deliveryFailed} delivery.failed lines`);
  return { sweeps, deliveryFailed };
}

/** 5. With every socket closed, waits for the system to clean up: no membership left, no post for a second. */
async function awaitCleanup(
  system: LocalSystem,
  rooms: number,
  posts: Posts,
  problems: string[],
): Promise<void> {
  const quiet = now() + 600_000;
  const left = async () => {
    let n = 0;
    for (let r = 0; r < rooms; r++) n += (await roomMembers(system.deps, `load-${r}`)).length;
    return n;
  };
  while (now() < quiet && ((await left()) > 0 || posts.posting > 0 || now() - posts.lastPost < 1000))
    await sleep(100);
  const remaining = await left();
  if (remaining > 0) problems.push(`${remaining} memberships outlived their sockets`);
}

/**
 * The figures the harness holds, taken before it lets go of its sockets, messages and latencies,
 * so the heap measured after is the system's own.
 */
function letGo(sockets: LoadSockets, socks: Sock[], sent: Map<string, Sent>) {
  const counts = {
    connections: sockets.connections,
    reconnects: sockets.reconnects,
    rejoins: sockets.rejoins,
    messages: sent.size,
  };
  const sorted = [...sockets.latencies].sort((a, b) => a - b);
  const latency = { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
  socks.length = 0;
  sent.clear();
  sockets.latencies.length = 0;
  return { counts, latency };
}

/** The heap once the harness has let go, MB; over the baseline by more than an allowance is a problem. */
async function heapAfter(baselineHeapMb: number, problems: string[]): Promise<number> {
  await sleep(500);
  const afterHeapMb = heapMb();
  // "Near": the store keeps the rooms' history, so allow a little growth over the baseline.
  const allowance = Math.max(40, baselineHeapMb * 0.5);
  if (gc && afterHeapMb > baselineHeapMb + allowance)
    problems.push(
      `heap ${fmt(afterHeapMb)} MB after, over ${fmt(baselineHeapMb)} MB baseline + ${fmt(allowance)}`,
    );
  return afterHeapMb;
}

/** The report as a Markdown table. */
export function loadTable(options: LoadOptions, r: LoadReport): string {
  return table(
    ['figure', 'value'],
    [
      ['users × sockets each, rooms', `${options.users} × ${options.socketsPerUser}, ${options.rooms}`],
      ['sweeper interval', `${options.sweepIntervalS ?? 1} s (${r.sweeps} sweeps ran)`],
      ['connections opened (reconnects included)', r.connections],
      ['reconnects, leave-and-rejoins', `${r.reconnects}, ${r.rejoins}`],
      ['messages acknowledged', r.messages],
      ['deliveries', r.deliveries],
      ['deliveries/s', fmt(r.deliveriesPerS)],
      ['latency p50 / p99 (ms)', `${fmt(r.p50Ms)} / ${fmt(r.p99Ms)}`],
      ['delivery.failed lines', r.deliveryFailed],
      [
        'heap baseline / peak in traffic / peak in teardown / after (MB)',
        `${fmt(r.baselineHeapMb)} / ${fmt(r.trafficPeakHeapMb)} / ${fmt(r.peakHeapMb)} / ${fmt(r.afterHeapMb)}`,
      ],
      ['peak RSS (MB)', fmt(r.peakRssMb)],
      ['lost, doubled or kept', r.problems.length],
      ['wall time (s)', fmt(r.seconds)],
    ],
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const size = (name: string, fallback: number) => {
    const raw = process.env[name];
    return raw && /^\d+$/.test(raw) ? Number(raw) : fallback;
  };
  const options: LoadOptions = {
    users: size('LOAD_USERS', 100),
    socketsPerUser: size('LOAD_SOCKETS_PER_USER', 10),
    rooms: size('LOAD_ROOMS', 10),
    messagesPerUser: size('LOAD_MESSAGES_PER_USER', 5),
    sweepIntervalS: size('LOAD_SWEEP_INTERVAL_S', 1),
    progress: (line) => process.stderr.write(`${line}\n`),
  };
  if (!gc) process.stderr.write('load: run with node --expose-gc for the memory check (npm run load does)\n');
  const report = await runLoad(options);
  process.stdout.write(`${loadTable(options, report)}\n`);
  for (const p of report.problems.slice(0, 50)) process.stdout.write(`PROBLEM: ${p}\n`);
  process.exitCode = report.problems.length === 0 ? 0 : 1;
}

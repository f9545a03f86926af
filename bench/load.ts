import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { type RawData, WebSocket } from 'ws';
import { roomMembers } from '../lambdas/core/room-members.ts';
import { issueAccessToken } from '../lambdas/core/tokens.ts';
import { localConfig } from '../local/config.ts';
import { type LocalSystem, startLocal } from '../local/system.ts';
import { sleep } from '../test/kit/wait.ts';
import { ORIGIN } from './events.ts';
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

/** One socket's time in its room: from `joined` received to `leave` sent (or close), ms. */
interface Span {
  from: number;
  to: number;
}

interface Sock {
  readonly user: number;
  readonly room: string;
  ws: WebSocket;
  readonly spans: Span[];
  /** messageId -> times received. */
  readonly got: Map<string, number>;
  readonly pending: Map<string, (frame: Record<string, unknown>) => void>;
  /** Churned (leaves, rejoins, reconnects) rather than kept in its room from start to end. */
  readonly churner: boolean;
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
  const system: LocalSystem = await startLocal(
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
  // Posts in flight, and when the last one ended: the system is quiet when none has run for a while.
  const api = system.deps.api;
  let posting = 0;
  let lastPost = now();
  if (api) {
    const post = api.post.bind(api);
    (api as { post: typeof post }).post = async (id, data) => {
      posting++;
      try {
        return await post(id, data);
      } finally {
        posting--;
        lastPost = now();
      }
    };
  }
  const problems: string[] = [];
  let peakHeap = 0;
  let peakRss = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed / MB);
    peakRss = Math.max(peakRss, m.rss / MB);
  }, 100);
  try {
    const baselineHeapMb = heapMb();
    const roomOf = (user: number, i: number) => `load-${(user + i) % options.rooms}`;
    const tokens = await mapLimit(
      Array.from({ length: options.users }, (_, u) => u),
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
    const sent = new Map<string, Sent>();
    const latencies: number[] = [];
    let connections = 0;
    let reconnects = 0;
    let rejoins = 0;
    let nextId = 0;

    const open = (sock: { user: number }): Promise<WebSocket> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(system.wsUrl, ['jwt', tokens[sock.user] ?? ''], {
          origin: ORIGIN,
          perMessageDeflate: false,
        });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
        ws.once('unexpected-response', (_q, res) =>
          reject(new Error(`handshake refused: ${res.statusCode}`)),
        );
      });
    const attach = (sock: Sock) => {
      connections++;
      sock.ws.on('message', (data: RawData) => {
        const frame = JSON.parse(String(data)) as Record<string, unknown>;
        if (typeof frame.id === 'string') {
          const done = sock.pending.get(frame.id);
          sock.pending.delete(frame.id);
          done?.(frame);
        }
        if (frame.type === 'message' && typeof frame.messageId === 'string') {
          if (frame.room !== sock.room)
            problems.push(`a socket of ${sock.room} got a message of ${frame.room}`);
          sock.got.set(frame.messageId, (sock.got.get(frame.messageId) ?? 0) + 1);
          const text = String(frame.text);
          latencies.push(Date.now() - Number(text.slice(text.indexOf('@') + 1)));
        }
        if (frame.type === 'closing')
          problems.push(`a socket was closed by the server: ${String(frame.reason)}`);
      });
    };
    const request = (sock: Sock, frame: Record<string, unknown>): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const id = `q${++nextId}`;
        const timer = setTimeout(() => reject(new Error(`no answer to ${String(frame.type)}`)), 120_000);
        sock.pending.set(id, (answer) => {
          clearTimeout(timer);
          resolve(answer);
        });
        sock.ws.send(JSON.stringify({ ...frame, id }));
      });
    const join = async (sock: Sock) => {
      const answer = await request(sock, { type: 'join', room: sock.room });
      if (answer.type !== 'joined') throw new Error(`join answered ${JSON.stringify(answer)}`);
      sock.spans.push({ from: now(), to: Number.POSITIVE_INFINITY });
    };
    const endSpan = (sock: Sock) => {
      const span = sock.spans.at(-1);
      if (span && span.to === Number.POSITIVE_INFINITY) span.to = now();
    };

    // 1. Every socket opens and joins its room, the sweeper running all along.
    const plan = Array.from({ length: options.users * options.socketsPerUser }, (_, k) => ({
      user: k % options.users,
      index: Math.floor(k / options.users),
    }));
    const t0 = now();
    const socks = await mapLimit(plan, 16, async ({ user, index }) => {
      const sock: Sock = {
        user,
        room: roomOf(user, index),
        ws: await open({ user }),
        spans: [],
        got: new Map(),
        pending: new Map(),
        // One socket of each user churns; the others stay from start to end.
        churner: index === options.socketsPerUser - 1 && options.socketsPerUser > 1,
      };
      attach(sock);
      await join(sock);
      return sock;
    });
    say(`load: ${socks.length} sockets open and joined in ${fmt((now() - t0) / 1000)} s`);

    // 2. Every user sends from its steady sockets, while churners leave, rejoin and reconnect.
    let sending = true;
    const churners = socks.filter((s) => s.churner);
    // Ten churners at a time, each in turn leaving and rejoining, or closing and reconnecting.
    const churnOne = async (sock: Sock, turn: number) => {
      endSpan(sock);
      if (turn % 2 === 0) {
        await request(sock, { type: 'leave', room: sock.room });
        await join(sock);
        rejoins++;
        return;
      }
      const closed = new Promise((r) => sock.ws.once('close', r));
      sock.ws.close(1000);
      await closed;
      sock.ws = await open(sock);
      sock.pending.clear();
      attach(sock);
      await join(sock);
      reconnects++;
    };
    const churn = Promise.all(
      Array.from({ length: Math.min(10, churners.length) }, async (_, lane) => {
        for (let turn = 0; sending; turn++) {
          const mine = churners.filter((_, i) => i % 10 === lane);
          const sock = mine[turn % mine.length] as Sock;
          await churnOne(sock, turn + lane);
          await sleep(5);
        }
      }),
    );
    const t1 = now();
    await mapLimit(
      Array.from({ length: options.users }, (_, u) => u),
      options.users,
      async (u) => {
        const mine = socks.filter((s) => s.user === u && !s.churner);
        for (let i = 0; i < options.messagesPerUser; i++) {
          const sock = mine[i % mine.length] as Sock;
          const start = now();
          const ack = await request(sock, {
            type: 'message',
            room: sock.room,
            text: `m${u}.${i}@${Date.now()}`,
          });
          if (ack.type !== 'ack' || typeof ack.messageId !== 'string') {
            problems.push(`a message was not acknowledged: ${JSON.stringify(ack)}`);
            continue;
          }
          sent.set(ack.messageId, { room: sock.room, start, ack: now() });
        }
      },
    );
    sending = false;
    await churn;
    say(`load: ${sent.size} messages sent in ${fmt((now() - t1) / 1000)} s`);

    // 3. Wait for what is owed, then check every socket.
    const owed = (sock: Sock) =>
      [...sent].filter(
        ([, m]) => m.room === sock.room && sock.spans.some((s) => m.start >= s.from && m.ack <= s.to),
      );
    const deadline = now() + 60_000;
    while (now() < deadline && socks.some((s) => owed(s).some(([id]) => !s.got.has(id)))) await sleep(50);
    const sendSeconds = (now() - t1) / 1000;
    let deliveries = 0;
    for (const sock of socks) {
      for (const [id] of owed(sock)) {
        if (!sock.got.has(id)) problems.push(`message ${id} of ${sock.room} never reached a member socket`);
      }
      for (const [id, times] of sock.got) {
        deliveries += times;
        if (times > 1) problems.push(`message ${id} arrived ${times} times at one socket`);
        if (!sent.has(id)) problems.push(`message ${id} arrived but was never acknowledged`);
      }
    }

    // 4. No open socket lost its membership: the rows say so, and one more message per room reaches them all.
    for (let r = 0; r < options.rooms; r++) {
      const room = `load-${r}`;
      const inRoom = socks.filter((s) => s.room === room);
      const rows = await roomMembers(system.deps, room);
      if (rows.length !== inRoom.length)
        problems.push(`${room} has ${rows.length} membership rows for ${inRoom.length} open member sockets`);
      const from = inRoom.find((s) => !s.churner);
      if (!from) continue;
      const ack = await request(from, { type: 'message', room, text: `last@${Date.now()}` });
      const id = String(ack.messageId);
      const end = now() + 5000;
      while (now() < end && inRoom.some((s) => !s.got.has(id))) await sleep(20);
      const missing = inRoom.filter((s) => !s.got.has(id)).length;
      if (missing > 0) problems.push(`${missing} open sockets of ${room} are no longer in it`);
    }
    const sweeps = audit.filter((l) => l.includes('"sweep.run"')).length;
    if (sweeps === 0) problems.push('the sweeper never ran');
    const deliveryFailed = audit.filter((l) => l.includes('"delivery.failed"')).length;
    if (deliveryFailed > 0) problems.push(`${deliveryFailed} delivery.failed lines`);

    const trafficPeakHeapMb = peakHeap;
    // 5. Close everything and let the system clean up, then measure memory again.
    await Promise.all(
      socks.map(async (s) => {
        if (s.ws.readyState === WebSocket.CLOSED) return;
        const closed = new Promise((r) => s.ws.once('close', r));
        s.ws.close(1000);
        await closed;
      }),
    );
    const quiet = now() + 600_000;
    const left = async () => {
      let n = 0;
      for (let r = 0; r < options.rooms; r++) n += (await roomMembers(system.deps, `load-${r}`)).length;
      return n;
    };
    while (now() < quiet && ((await left()) > 0 || posting > 0 || now() - lastPost < 1000)) await sleep(100);
    const remaining = await left();
    if (remaining > 0) problems.push(`${remaining} memberships outlived their sockets`);
    // The harness lets go of what it holds, so the figure is the system's own.
    const figures = {
      connections,
      reconnects,
      rejoins,
      messages: sent.size,
      deliveries,
      sorted: [...latencies].sort((a, b) => a - b),
    };
    socks.length = 0;
    sent.clear();
    latencies.length = 0;
    await sleep(500);
    const afterHeapMb = heapMb();
    // "Near": the store keeps the rooms' history, so allow a little growth over the baseline.
    const allowance = Math.max(40, baselineHeapMb * 0.5);
    if (gc && afterHeapMb > baselineHeapMb + allowance)
      problems.push(
        `heap ${fmt(afterHeapMb)} MB after, over ${fmt(baselineHeapMb)} MB baseline + ${fmt(allowance)}`,
      );

    const { sorted } = figures;
    return {
      connections: figures.connections,
      reconnects: figures.reconnects,
      rejoins: figures.rejoins,
      messages: figures.messages,
      deliveries: figures.deliveries,
      deliveriesPerS: deliveries / sendSeconds,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      sweeps,
      deliveryFailed,
      baselineHeapMb,
      trafficPeakHeapMb,
      peakHeapMb: peakHeap,
      peakRssMb: peakRss,
      afterHeapMb,
      seconds: (now() - started) / 1000,
      problems,
    };
  } finally {
    clearInterval(sampler);
    await system.close();
  }
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

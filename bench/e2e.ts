import { randomUUID } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { connectionsApi } from '../lambdas/aws/connections-api.ts';
import { joinRoom, leaveRoom } from '../lambdas/core/memberships.ts';
import { allSocketRows } from '../lambdas/core/socket-rows.ts';
import { issueAccessToken } from '../lambdas/core/tokens.ts';
import {
  sdkConnectionsApi as managementApi,
  sdkManagementClient as managementClient,
} from '../test/kit/sdk-connections-api.ts';
import { startTestSystem } from '../test/kit/system.ts';
import { ORIGIN } from './events.ts';
import { fmt, mapLimit, median, now, percentile, progress, ratio, type Section, table } from './support.ts';

export interface Delivery {
  readonly sockets: number;
  readonly messages: number;
  readonly deliveriesPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU time of this process over wall time while driving (100% = one core busy). */
  readonly cpuPct: number;
}

export interface E2eRow {
  readonly sockets: number;
  readonly ours: Delivery;
  readonly bare: Delivery;
}

export interface E2eResult {
  readonly post: PostCost;
  readonly rows: readonly E2eRow[];
  readonly section: Section;
}

const ROOM = 'bench';

function open(url: string, protocols: string[] = []): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { origin: ORIGIN, perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
  });
}

/**
 * Sends `messages` chat messages from the first socket, one at a time (the next when every
 * member has the previous one), and times each delivery from just before the send to its
 * arrival. Deliveries per second are over the whole run.
 */
async function drive(sockets: WebSocket[], messages: number): Promise<Delivery> {
  const sentAt: number[] = [];
  const latencies: number[] = [];
  let waiting: { left: number; done: () => void } | undefined;
  let unexpected = 0;
  const onMessage = (data: RawData) => {
    const at = now();
    const frame = JSON.parse(String(data)) as { type?: string; text?: string };
    if (frame.type === 'message') {
      const k = Number(frame.text);
      latencies.push(at - (sentAt[k] ?? at));
      if (waiting && --waiting.left === 0) waiting.done();
    } else if (frame.type !== 'ack' && frame.type !== 'member_joined') unexpected++;
  };
  for (const s of sockets) s.on('message', onMessage);
  const sender = sockets[0] as WebSocket;
  const start = now();
  const cpuBefore = process.cpuUsage();
  for (let k = 0; k < messages; k++) {
    const all = new Promise<void>((resolve) => {
      waiting = { left: sockets.length, done: resolve };
    });
    sentAt[k] = now();
    sender.send(JSON.stringify({ type: 'message', room: ROOM, text: String(k), id: k }));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      all,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`message ${k} not delivered to every socket in 60 s`)),
          60_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }
  const elapsed = now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  for (const s of sockets) s.off('message', onMessage);
  if (unexpected > 0) throw new Error(`${unexpected} unexpected frames (errors?) during the run`);
  return {
    sockets: sockets.length,
    messages,
    deliveriesPerS: (sockets.length * messages) / (elapsed / 1000),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    cpuPct: ((cpu.user + cpu.system) / 1000 / elapsed) * 100,
  };
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.readyState === WebSocket.CLOSED) return resolve();
          s.once('close', () => resolve());
          s.terminate();
        }),
    ),
  );
}

/** Ours: the local system (authorizer, $connect, $default, @connections over HTTP), every socket its own user. */
async function ours(count: number, messages: number): Promise<Delivery> {
  const system = await startTestSystem(
    { RATE_LIMIT_MAX: '100000', MAX_CONNECTIONS_PER_USER: '1000' },
    undefined,
    { sweeperTimer: false },
  );
  const sockets: WebSocket[] = [];
  try {
    const tokens = await mapLimit(
      Array.from({ length: count }, (_, i) => i),
      8,
      async (i) => {
        const { token } = await issueAccessToken(system.deps, {
          sub: `bench-${i}`,
          username: `bench${i}`,
          roles: ['user'],
          sid: randomUUID(),
        });
        return token;
      },
    );
    const t0 = now();
    sockets.push(...(await mapLimit(tokens, 16, (token) => open(system.wsUrl, ['jwt', token]))));
    progress(`e2e: ${count} sockets through the authorizer and $connect in ${fmt((now() - t0) / 1000)} s`);
    // Memberships straight into the store: 1000 `join` frames would each tell every earlier
    // member (n² member_joined posts), which is setup, not what is measured.
    const rows = await allSocketRows(system.deps);
    await mapLimit(rows, 16, (c) => joinRoom(system.deps, c, ROOM));
    await drive(sockets, 1);
    const result = await drive(sockets, messages);
    // Out of the room before closing, or every $disconnect would tell every remaining member (n² again).
    await mapLimit(rows, 16, (c) => leaveRoom(system.deps, c.connectionId, ROOM));
    return result;
  } finally {
    const t = now();
    await closeAll(sockets);
    const closedAt = now();
    await system.close();
    progress(`e2e: teardown: sockets ${fmt(closedAt - t)} ms, system ${fmt(now() - closedAt)} ms`);
  }
}

/** The upper bound: a bare `ws` server that broadcasts each chat message to every socket in the room. */
async function bare(count: number, messages: number): Promise<Delivery> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const room = new Set<WebSocket>();
  server.on('connection', (ws) => {
    room.add(ws);
    ws.on('close', () => room.delete(ws));
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { type?: string; room?: string; text?: string; id?: unknown };
      if (m.type !== 'message') return;
      const out = JSON.stringify({
        type: 'message',
        room: m.room,
        from: 'bench0',
        text: m.text,
        ts: Date.now(),
        messageId: randomUUID(),
      });
      for (const member of room) member.send(out);
      ws.send(JSON.stringify({ type: 'ack', id: m.id }));
    });
  });
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sockets: WebSocket[] = [];
  try {
    sockets.push(...(await mapLimit(Array.from({ length: count }), 16, () => open(url))));
    await drive(sockets, 1);
    return await drive(sockets, messages);
  } finally {
    await closeAll(sockets);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export interface PostCost {
  /** CPU µs per post through the AWS SDK client (what the functions used before). */
  readonly sdkUs: number;
  /** Through ours: lambdas/aws/connections-api.ts, the SDK's SigV4 signer over keep-alive node:http. */
  readonly leanUs: number;
  /** A bare unsigned keep-alive POST of the same bytes: the floor. */
  readonly rawUs: number;
  /** Median wall ms of one post through each, 16 at a time, for scale. */
  readonly sdkMs: number;
  readonly leanMs: number;
}

/** Ours ÷ the SDK client in CPU per post: the budget. */
export const POST_CPU_BUDGET = 0.4;

/**
 * Why ours is far from the bare server, and what the lean poster saves: the CPU of one
 * `PostToConnection` through the AWS SDK client and through ours (lambdas/aws/connections-api.ts),
 * next to a bare keep-alive HTTP POST of the same bytes, all to a server that only answers 200,
 * 16 at a time as the fan-out posts, alternating rounds so drift hits each alike.
 */
export async function measurePostCost(posts = 3000, rounds = 3): Promise<PostCost> {
  const server = await startOkServer();
  const data = JSON.stringify({
    type: 'message',
    room: ROOM,
    from: 'bench0',
    text: '0',
    ts: Date.now(),
    messageId: randomUUID(),
  });
  const ids = Array.from({ length: posts }, (_, i) => `conn${String(i).padStart(11, '0')}=`);
  const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' };
  const endpoint = `http://127.0.0.1:${server.port}/bench`;
  const client = managementClient(endpoint, { region: 'us-east-1', credentials });
  const sdk = managementApi(client);
  const lean = connectionsApi({ endpoint, region: 'us-east-1', credentials });
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const raw = rawPoster(server.port, agent, data);
  const samples = {
    sdk: [] as PostSample[],
    lean: [] as PostSample[],
    raw: [] as number[],
  };
  try {
    for (let i = 0; i < rounds; i++) {
      samples.sdk.push(await cpuPerPost(ids, (id) => sdk.post(id, data)));
      samples.lean.push(await cpuPerPost(ids, (id) => lean.post(id, data)));
      samples.raw.push((await cpuPerPost(ids, raw)).us);
    }
    return {
      sdkUs: median(samples.sdk.map((x) => x.us)),
      leanUs: median(samples.lean.map((x) => x.us)),
      rawUs: median(samples.raw),
      sdkMs: median(samples.sdk.map((x) => x.ms)),
      leanMs: median(samples.lean.map((x) => x.ms)),
    };
  } finally {
    client.destroy();
    lean.destroy();
    agent.destroy();
    await server.close();
  }
}

/** A server that reads each request and answers 200 with no body. */
async function startOkServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-length': 0 });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The floor: the same POST of `data`, unsigned, over keep-alive `node:http`. */
function rawPoster(port: number, agent: Agent, data: string): (id: string) => Promise<void> {
  return (id) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/bench/@connections/${encodeURIComponent(id)}`,
          agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', reject);
      req.end(data);
    });
}

interface PostSample {
  /** CPU µs per post. */
  readonly us: number;
  /** Wall ms per post, 16 in flight. */
  readonly ms: number;
}

/** Posts to every id, 16 at a time, after a warm-up of 300. */
async function cpuPerPost(
  ids: readonly string[],
  post: (id: string) => Promise<unknown>,
): Promise<PostSample> {
  await mapLimit(ids.slice(0, 300), 16, post);
  const before = process.cpuUsage();
  const started = now();
  await mapLimit(ids, 16, post);
  const wall = now() - started;
  const cpu = process.cpuUsage(before);
  return { us: (cpu.user + cpu.system) / ids.length, ms: (wall / ids.length) * 16 };
}

/** One row of the delivery table: a server's run with `sockets` in the room. */
function runRow(sockets: number, server: string, run: Delivery): (string | number)[] {
  return [
    sockets,
    run.messages,
    server,
    fmt(run.deliveriesPerS),
    fmt(run.p50Ms),
    fmt(run.p99Ms),
    `${fmt(run.cpuPct, 2)}%`,
  ];
}

/**
 * Measurement 3: message-to-delivery through the local gateway with `count` sockets in one room,
 * next to a bare `ws` broadcast server, in the same process and run.
 */
export async function measureE2e(plan: readonly { sockets: number; messages: number }[]): Promise<E2eResult> {
  const rows: E2eRow[] = [];
  for (const { sockets, messages } of plan) {
    const b = await bare(sockets, messages);
    progress(`e2e: bare ws, ${sockets} sockets: ${fmt(b.deliveriesPerS)} deliveries/s`);
    const o = await ours(sockets, messages);
    progress(`e2e: ours, ${sockets} sockets: ${fmt(o.deliveriesPerS)} deliveries/s`);
    rows.push({ sockets, ours: o, bare: b });
  }
  const post = await measurePostCost();
  const markdown = [
    e2eTable(rows),
    '',
    'One sender, one message in flight: the next is sent when every socket of the room has the previous ' +
      "one. Latency runs from just before the send to each socket's receipt, over every delivery. Clients, " +
      'gateway, handlers and dynalite share this process and its 2 cores, as does the bare server in its turn. ' +
      'Each of our deliveries is a `PostToConnection` over HTTP to the local `@connections` endpoint, as on AWS, ' +
      'where API Gateway does that part instead of this machine. Every socket is its own user (tokens minted ' +
      "with the system's key); memberships are written straight into the store.",
    '',
    `**Why the gap.** Ours is CPU-bound here (see the CPU column), and the bulk of it is one HTTP call per ` +
      'delivery; the bare `ws` server writes each frame to a socket it holds. There is no broadcast call in ' +
      'the `@connections` API, so the post per member stays, on AWS too, where API Gateway delivers but the ' +
      'function still pays its side of every post.',
    '',
    postingMarkdown(post),
  ].join('\n');
  const failures =
    post.leanUs / post.sdkUs > POST_CPU_BUDGET
      ? [`a post costs ${ratio(post.leanUs, post.sdkUs)} of the SDK client's CPU (budget ${POST_CPU_BUDGET})`]
      : [];
  return { post, rows, section: { title: 'End to end through the local gateway', markdown, failures } };
}

/** Per room size: ours, the bare server, and ours ÷ bare. */
function e2eTable(rows: readonly E2eRow[]): string {
  return table(
    ['sockets in the room', 'messages', 'server', 'deliveries/s', 'p50 ms', 'p99 ms', 'CPU while driving'],
    rows.flatMap((r) => [
      runRow(r.sockets, 'ours: local gateway + Lambda handlers + dynalite', r.ours),
      runRow(r.sockets, 'bare `ws` broadcast (upper bound)', r.bare),
      [
        r.sockets,
        '',
        '**ours ÷ bare**',
        ratio(r.ours.deliveriesPerS, r.bare.deliveriesPerS),
        ratio(r.ours.p50Ms, r.bare.p50Ms),
        ratio(r.ours.p99Ms, r.bare.p99Ms),
        '',
      ],
    ]),
  );
}

/** The posting comparison: its table and what it means for a room of 50. */
function postingMarkdown(post: PostCost): string {
  return [
    '**Posting: ours vs the AWS SDK client**, CPU per `PostToConnection` in this process (client and a ' +
      'stand-in server answering 200), 16 at a time, median of 3 alternating rounds of 3,000 posts:',
    '',
    table(
      ['client', 'CPU µs per post', '÷ SDK client', 'wall ms per post (16 in flight)'],
      [
        ['AWS SDK client (`@aws-sdk/client-apigatewaymanagementapi`)', fmt(post.sdkUs), '1', fmt(post.sdkMs)],
        [
          'ours: SigV4 (`@smithy/signature-v4`) over keep-alive `node:http` (lambdas/aws/connections-api.ts)',
          fmt(post.leanUs),
          `**${ratio(post.leanUs, post.sdkUs)}** (budget ≤ ${POST_CPU_BUDGET})`,
          fmt(post.leanMs),
        ],
        [
          'floor: the same POST unsigned, bare `node:http`',
          fmt(post.rawUs),
          ratio(post.rawUs, post.sdkUs),
          '',
        ],
      ],
    ),
    '',
    `For a room of 50 that is ${fmt((post.leanUs * 50) / 1000, 2)} ms of CPU per message instead of ` +
      `${fmt((post.sdkUs * 50) / 1000, 2)} ms. The SDK client's per-command machinery (middleware stack, ` +
      'endpoint rules, retry and serde) was most of a post; signing and our wrapper add ' +
      `${fmt(post.leanUs - post.rawUs)} µs to the bare POST. The local system and the functions post through ours.`,
  ].join('\n');
}

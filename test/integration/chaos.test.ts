import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ChatMessage, RealtimeClient, type WebSocketLike } from '../../web/client.ts';
import { registerAndLogin, startTestSystem, type TestSystem } from '../kit/system.ts';
import { ALLOWED_ORIGIN } from '../kit/ws-client.ts';

/**
 * Sockets killed at random, without a close frame, while every user sends: each client's
 * application must still see every message of the room exactly once, in `seq` order.
 */
let system: TestSystem;
const USERS = ['ann', 'bob', 'cid', 'dee'] as const;
const ROOM = 'chaos';
const PER_USER = 20;

interface Peer {
  readonly user: string;
  readonly client: RealtimeClient;
  readonly got: ChatMessage[];
  socket: WebSocket | undefined;
  resets: number;
  restored: number;
  duplicates: number;
}

const peers: Peer[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  system = await startTestSystem(
    { RATE_LIMIT_MAX: '100000', BLOCK_AFTER_VIOLATIONS: '1000000', MAX_CONNECTIONS_PER_USER: '100' },
    undefined,
    { sweeperTimer: false },
  );
  for (const user of USERS) {
    const pair = await registerAndLogin(system, user);
    const peer: Peer = {
      user,
      got: [],
      socket: undefined,
      resets: 0,
      restored: 0,
      duplicates: 0,
      client: new RealtimeClient({
        httpUrl: system.httpUrl,
        wsUrl: system.wsUrl,
        auth: 'protocol',
        reconnectBaseMs: 20,
        reconnectMaxMs: 200,
        gapWaitMs: 300,
        pingIntervalMs: 0,
        createSocket: (url, protocols) => {
          const ws = new WebSocket(url, protocols, { origin: ALLOWED_ORIGIN });
          peer.socket = ws;
          return ws as unknown as WebSocketLike;
        },
      }),
    };
    peer.client.useTokens({ ...pair, token_type: 'Bearer' });
    peer.client.on('message', (m) => peer.got.push(m));
    peer.client.on('reset', () => peer.resets++);
    peer.client.on('rejoined', (r) => {
      peer.restored += r.restored;
    });
    peers.push(peer);
  }
  for (const p of peers) {
    await p.client.connect();
    await p.client.join(ROOM);
  }
});
afterAll(async () => {
  for (const p of peers) p.client.disconnect();
  await system.close();
});

describe('chaos: sockets killed at random while several users send', () => {
  it('every client sees every message exactly once, in seq order, with nothing restored twice', async () => {
    let sending = true;
    let kills = 0;
    const chaos = (async () => {
      while (sending) {
        await sleep(100 + Math.random() * 200);
        const victim = peers[Math.floor(Math.random() * peers.length)];
        if (victim?.socket?.readyState === WebSocket.OPEN) {
          victim.socket.terminate(); // TCP reset: no close frame
          kills++;
        }
      }
    })();
    await Promise.all(
      peers.map(async (p) => {
        for (let i = 0; i < PER_USER; i++) {
          const result = await p.client.send(ROOM, `${p.user}-${i}`);
          if (result.duplicate) p.duplicates++;
          await sleep(Math.random() * 120);
        }
      }),
    );
    sending = false;
    await chaos;

    const expected = USERS.flatMap((u) => Array.from({ length: PER_USER }, (_, i) => `${u}-${i}`)).sort();
    const deadline = Date.now() + 30_000;
    while (peers.some((p) => p.got.length < expected.length) && Date.now() < deadline) await sleep(100);

    expect(kills).toBeGreaterThanOrEqual(10);
    for (const p of peers) {
      const texts = p.got.map((m) => m.text);
      expect([...texts].sort(), `${p.user} sees every message once`).toEqual(expected);
      const seqs = p.got.map((m) => m.seq);
      expect(
        seqs.every((s, i) => i === 0 || s > (seqs[i - 1] ?? 0)),
        `${p.user} sees them in seq order`,
      ).toBe(true);
      expect(new Set(p.got.map((m) => m.epoch)).size).toBe(1);
      expect(p.resets).toBe(0);
    }
    // The kills did cost messages that recovery then restored.
    expect(peers.reduce((n, p) => n + p.restored, 0)).toBeGreaterThan(0);
    // About 15 s on a quiet machine; a busy one (tests in parallel, other work) can double it.
  }, 120_000);
});

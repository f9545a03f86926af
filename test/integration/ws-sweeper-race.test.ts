import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { roomMembers } from '../../lambdas/core/room-members.ts';
import {
  putSocketRow,
  socketRowKey,
  socketsOfUser,
  updateSocketToken,
} from '../../lambdas/core/socket-rows.ts';
import { batchGet } from '../../lambdas/core/store.ts';
import {
  accessTokens,
  claimsOfToken,
  registerAndLogin,
  startWsTestSystem,
  type TestSystem,
  untilDisconnectsHandled,
} from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import { type Client, is, openClient, terminateAll } from '../kit/ws-client.ts';

let system: TestSystem;
const USERS = Array.from({ length: 10 }, (_, i) => `sw${i}`);
const SOCKETS_PER_USER = 6;
let tokens: Record<string, string> = {};

beforeAll(async () => {
  system = await startWsTestSystem();
  tokens = await accessTokens(system, USERS);
});
afterEach(async () => {
  terminateAll();
  // The first test's 60 sockets leave a 60-member room: their $disconnects and member_left
  // posts must be done before the next test's handshakes, or those wait behind them.
  await untilDisconnectsHandled(system);
});
afterAll(async () => {
  await system.close();
});

/** Runs the sweeper back to back until `stop()`; resolves with how many sweeps ran. */
function sweepLoop(): { stop(): Promise<number> } {
  let running = true;
  let runs = 0;
  const loop = (async () => {
    while (running) {
      await system.sweep();
      runs++;
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return runs;
    },
  };
}

describe('the sweeper against sockets that connect and join meanwhile', () => {
  it('keeps every membership of a live socket: 60 sockets join one room during back-to-back sweeps, and each gets every message exactly once', async () => {
    const room = 'swept';
    const sweeps = sweepLoop();
    const clients: { user: string; client: Client }[] = [];
    // Sockets open and join in waves while sweeps run, so many land between a sweep's two reads.
    for (let wave = 0; wave < SOCKETS_PER_USER; wave++) {
      const opened = await Promise.all(
        USERS.map(async (user) => {
          const client = await openClient(system.wsUrl, { protocols: ['jwt', tokens[user] ?? ''] });
          expect(await client.request({ type: 'join', room }, 5000)).toMatchObject({ type: 'joined' });
          return { user, client };
        }),
      );
      clients.push(...opened);
    }
    const runs = await sweeps.stop();
    expect(runs).toBeGreaterThan(0);
    // One more sweep with nothing in flight must not take anything either.
    await system.sweep();

    const members = await roomMembers(system.deps, room);
    expect(members).toHaveLength(USERS.length * SOCKETS_PER_USER);

    const senders = USERS.map((user) => clients.find((c) => c.user === user)?.client as Client);
    await Promise.all(senders.map((c, i) => c.request({ type: 'message', room, text: `from ${i}` }, 5000)));
    for (const { client } of clients) {
      await until(
        'every message at every socket',
        () => client.count(is('message', { room })) >= USERS.length,
      );
    }
    await Promise.all(clients.map(({ client }) => client.expectNone(is('closing'), 50)));
    for (const { client } of clients) {
      const texts = client.received.filter(is('message', { room })).map((f) => f.text);
      expect(new Set(texts).size).toBe(USERS.length);
      expect(texts).toHaveLength(USERS.length);
    }
  }, 30_000);

  it('leaves alone a socket whose row is written but whose handshake is not finished (GetConnection answers 410)', async () => {
    const claims = claimsOfToken(tokens.sw0 ?? '');
    // What $connect stores before API Gateway has opened the socket: the gateway does not know it yet.
    const connectionId = 'midUpgrade0=';
    await putSocketRow(system.deps, {
      ...claims,
      connectionId,
      ip: '127.0.0.1',
      connectedAt: Date.now(),
      rooms: [],
    });
    await system.sweep();
    const [row] = await batchGet(system.deps.db, [
      { table: system.deps.tables.connections, key: socketRowKey(connectionId) },
    ]);
    expect(row).toBeDefined();
  });
});

describe('forgetting a socket against its own frames', () => {
  it('leaves no membership behind when a socket goes while its join is in flight', async () => {
    const room = 'join-vs-disconnect';
    const users = USERS.slice(0, 5);
    for (let round = 0; round < 4; round++) {
      await Promise.all(
        users.map(async (user) => {
          // Right after the sweeps above, a handshake on a busy machine can take more than 5 s.
          const client = await openClient(system.wsUrl, {
            protocols: ['jwt', tokens[user] ?? ''],
            timeoutMs: 20_000,
          });
          client.send({ type: 'join', room });
          // Gone at once: $disconnect races the join that is already being handled.
          setTimeout(() => client.ws.terminate(), round * 3);
          await client.closed;
        }),
      );
    }
    // Handlers still running may hold a membership for a moment; an orphan holds it for good.
    const deadline = Date.now() + 10_000;
    let left = await roomMembers(system.deps, room);
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      left = await roomMembers(system.deps, room);
    }
    expect(left).toEqual([]);
  });
});

describe('the sweeper against a token refreshed meanwhile', () => {
  it('does not close a socket whose expired token was refreshed between the sweep reading its row and closing it', async () => {
    const pair = await registerAndLogin(system, 'sw_refresh');
    const claims = claimsOfToken(pair.access_token);
    const client = await openClient(system.wsUrl, { protocols: ['jwt', pair.access_token] });
    const [row] = await socketsOfUser(system.deps, 'sw_refresh');
    const connectionId = row?.connectionId ?? '';
    const nowS = Math.floor(system.clock.now() / 1000);
    // The row as the sweep reads it: a token long expired.
    await updateSocketToken(system.deps, connectionId, { ...claims, exp: nowS - 3600 });
    // Right after the sweep's Scan returns, the socket refreshes (what a refresh_token frame writes).
    let refreshed = false;
    system.deps.db.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (!refreshed && context.commandName === 'ScanCommand') {
          refreshed = true;
          await updateSocketToken(system.deps, connectionId, {
            ...claims,
            jti: `${claims.jti}-next`,
            exp: nowS + 900,
          });
        }
        return out;
      },
      { step: 'initialize', name: 'refreshDuringSweep' },
    );
    try {
      await system.sweep();
    } finally {
      system.deps.db.middlewareStack.remove('refreshDuringSweep');
    }
    expect(refreshed).toBe(true);
    await client.expectNone(is('closing'), 200);
    expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });
});

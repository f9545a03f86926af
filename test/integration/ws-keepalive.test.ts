import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { revokeAccessToken } from '../../lambdas/core/access.ts';
import { RoundTripProbe } from '../kit/round-trips.ts';
import { claimsOfToken, registerAndLogin, startWsTestSystem, type TestSystem } from '../kit/system.ts';
import { is, openClient, refusalStatus, terminateAll } from '../kit/ws-client.ts';

let system: TestSystem;
const probe = new RoundTripProbe();
let detach: (() => void) | undefined;

beforeAll(async () => {
  system = await startWsTestSystem();
  detach = probe.attach(system.deps.db);
});
afterEach(() => terminateAll());
afterAll(async () => {
  detach?.();
  await system.close();
});

type Item = Record<string, AttributeValue>;

/**
 * Makes eventually consistent BatchGetItem reads of `db` stale, as DynamoDB's may be for about a
 * second after a write: the items `hide` picks are missing from them. Strong reads see the truth.
 */
function staleReads(db: DynamoDBClient, hide: (table: string, item: Item) => boolean): () => void {
  const name = `stale${Math.random().toString(36).slice(2)}`;
  db.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      if (context.commandName !== 'BatchGetItemCommand') return result;
      const input = args.input as { RequestItems: Record<string, { ConsistentRead?: boolean }> };
      const output = result.output as { Responses?: Record<string, Item[]> };
      for (const [table, items] of Object.entries(output.Responses ?? {})) {
        if (input.RequestItems[table]?.ConsistentRead) continue;
        output.Responses = { ...output.Responses, [table]: items.filter((item) => !hide(table, item)) };
      }
      return result;
    },
    { step: 'initialize', name },
  );
  return () => db.middlewareStack.remove(name);
}

let users = 0;
async function connected() {
  const username = `keep${++users}`;
  const { access_token } = await registerAndLogin(system, username);
  const client = await openClient(system.wsUrl, { protocols: ['jwt', access_token] });
  return { client, claims: claimsOfToken(access_token) };
}

/** The frame's BatchGetItem calls (the reads of its connection row, revocations and block). */
const frameReads = () => probe.db().filter((c) => c.name === 'BatchGetItemCommand');

describe('keep-alive reads', () => {
  it('reads a ping eventually consistent: 2.5 read units for its five rows, in one round trip', async () => {
    const { client } = await connected();
    await client.request({ type: 'whoami' });
    probe.reset();
    expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(frameReads().map((c) => c.readUnits)).toEqual([2.5]);
    expect(Math.max(...probe.db().map((c) => c.depth))).toBe(1);
  });

  it('reads every other frame strongly consistent: 5 read units', async () => {
    const { client } = await connected();
    for (const frame of [
      { type: 'whoami' },
      { type: 'presence', room: 'lobby' },
      { type: 'join', room: 'lobby' },
    ]) {
      probe.reset();
      await client.request(frame);
      expect(frameReads()[0]?.readUnits, frame.type).toBe(5);
    }
    // Only a plain ping is a keep-alive: one inside an encrypted frame or a malformed one is not.
    probe.reset();
    await client.request({ type: 'ping', extra: 'x'.repeat(300) });
    expect(frameReads()[0]?.readUnits).toBe(5);
  });

  it('reads again strongly, and answers pong, when a stale read misses the socket just opened', async () => {
    const { client } = await connected();
    const connections = system.deps.tables.connections;
    const undo = staleReads(system.deps.db, (table) => table === connections);
    try {
      probe.reset();
      expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
      expect(frameReads().map((c) => c.readUnits)).toEqual([2.5, 5]);
      await client.expectNone(is('closing'), 100);
    } finally {
      undo();
    }
    expect(await client.request({ type: 'whoami' })).toMatchObject({ type: 'identity' });
  });

  it('lets a stale read pass a ping of a token revoked a moment ago, and refuses its next other frame', async () => {
    const { client, claims } = await connected();
    const revoked = system.deps.tables.revoked;
    // Revoked behind the push path's back: only the frame checks can notice.
    await revokeAccessToken(system.deps, claims.jti, claims.exp);
    const undo = staleReads(system.deps.db, (table) => table === revoked);
    try {
      expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
      client.send({ type: 'whoami' });
      expect(await client.next(is('closing'))).toMatchObject({ reason: 'token_revoked' });
      expect((await client.closed).code).toBe(1000);
    } finally {
      undo();
    }
  });

  it('closes on a ping whose strong re-read confirms the revocation', async () => {
    const { client, claims } = await connected();
    await revokeAccessToken(system.deps, claims.jti, claims.exp);
    probe.reset();
    client.send({ type: 'ping' });
    expect(await client.next(is('closing'))).toMatchObject({ reason: 'token_revoked' });
    expect(
      frameReads()
        .slice(0, 2)
        .map((c) => c.readUnits),
    ).toEqual([2.5, 5]);
  });
});

describe('handshake reads', () => {
  it('reads revocations strongly: a stale view cannot admit a token revoked a moment ago', async () => {
    const username = `keep${++users}`;
    const { access_token } = await registerAndLogin(system, username);
    const claims = claimsOfToken(access_token);
    await revokeAccessToken(system.deps, claims.jti, claims.exp);
    const revoked = system.deps.tables.revoked;
    const undo = staleReads(system.deps.db, (table) => table === revoked);
    try {
      expect(await refusalStatus(system.wsUrl, { protocols: ['jwt', access_token] })).toBe(401);
    } finally {
      undo();
    }
  });
});

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loginWithRoles, registerAndLogin, startWsTestSystem, type TestSystem } from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import { is, openClient, type Refused, terminateAll } from '../kit/ws-client.ts';

const MAX = 10;
let system: TestSystem;
let admin: string;

beforeAll(async () => {
  system = await startWsTestSystem({ RATE_LIMIT_MAX: String(MAX), BLOCK_AFTER_VIOLATIONS: '100000' });
  admin = await loginWithRoles(system, 'boss', ['admin']);
});
afterEach(() => terminateAll());
afterAll(async () => {
  await system.close();
});

const connect = (token: string) => openClient(system.wsUrl, { protocols: ['jwt', token] });

describe('races on shared rows', () => {
  it('accepts exactly rateLimitMax of 40 frames sent at once from 4 sockets of one user', async () => {
    const { access_token } = await registerAndLogin(system, 'rush');
    const sockets = await Promise.all(Array.from({ length: 4 }, () => connect(access_token)));
    const answers = await Promise.all(
      sockets.flatMap((s) => Array.from({ length: 10 }, () => s.request({ type: 'ping' }, 10_000))),
    );
    expect(answers.filter(is('pong'))).toHaveLength(MAX);
    expect(answers.filter(is('error', { code: 'rate_limited' }))).toHaveLength(40 - MAX);
  });

  it('gives at most one successor to one refresh token presented five times at once', async () => {
    const { refresh_token } = await registerAndLogin(system, 'twice');
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => system.request('POST', '/auth/refresh', { body: { refresh_token } })),
    );
    expect(answers.filter((a) => a.status === 200).length).toBeLessThanOrEqual(1);
    for (const a of answers.filter((x) => x.status !== 200)) expect(a.body.error).toBe('invalid_token');
  });

  it('opens one socket for one ticket offered in five handshakes at once', async () => {
    const { access_token } = await registerAndLogin(system, 'ticketed');
    const { ticket } = (await system.request('POST', '/auth/ws-ticket', { token: access_token })).body as {
      ticket: string;
    };
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, () => openClient(system.wsUrl, { query: { ticket } })),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes) {
      if (o.status === 'rejected') expect((o.reason as Refused).status).toBe(401);
    }
  });

  it('delivers no message of a blocked user once the block has answered, even one that passed its first checks before it', async () => {
    const { access_token } = await registerAndLogin(system, 'blockee');
    const witnessToken = (await registerAndLogin(system, 'witness')).access_token;
    const room = 'block-race';
    const blockee = await connect(access_token);
    const witness = await connect(witnessToken);
    await blockee.request({ type: 'join', room });
    await witness.request({ type: 'join', room });
    await blockee.next(is('member_joined'));
    // Hold the answer to the message's first read (its checks pass, read before the block),
    // as if its function paused there while the admin's block went through.
    let hold: (() => void) | undefined;
    let armed = true;
    system.deps.db.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (armed && context.commandName === 'BatchGetItemCommand') {
          armed = false;
          await new Promise<void>((resolve) => {
            hold = resolve;
          });
        }
        return out;
      },
      { step: 'initialize', name: 'holdFirstRead' },
    );
    try {
      blockee.send({ type: 'message', room, text: 'late' });
      await until('the message to pass its first read', () => hold !== undefined);
      const blocked = await system.request('POST', '/admin/users/blockee/block', {
        token: admin,
        body: { duration_s: 600, reason: 'race' },
      });
      expect(blocked.status).toBe(204);
      hold?.();
      await witness.expectNone(is('message', { text: 'late' }), 500);
    } finally {
      system.deps.db.middlewareStack.remove('holdFirstRead');
      hold?.();
    }
  });
});

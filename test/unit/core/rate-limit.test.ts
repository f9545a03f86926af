import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditFields } from '../../../lambdas/core/audit.ts';
import { AppError } from '../../../lambdas/core/errors.ts';
import { countFrame, enforceRateLimit, rateVerdict } from '../../../lambdas/core/rate-limit.ts';
import { localTableNames } from '../../../lambdas/core/tables.ts';

const limits = { rateLimitMax: 5, rateLimitWindowS: 10, blockAfterViolations: 2, blockDurationS: 600 };
const sender = { connectionId: 'c-1', sub: 'u-1', username: 'alice' };

/** A store that answers every command with `answer` and keeps what it was sent. */
function fakeStore(answer: unknown = {}) {
  const sent: { name: string; input: Record<string, unknown> }[] = [];
  const db = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      sent.push({ name: command.constructor.name, input: command.input });
      return answer;
    },
  } as unknown as DynamoDBClient;
  return { db, sent };
}

function fakeDeps(answer?: unknown) {
  const { db, sent } = fakeStore(answer);
  const audited: { event: AuditEvent; fields: AuditFields | undefined }[] = [];
  const deps = {
    db,
    tables: localTableNames(),
    clock: { now: () => 1_000_000 },
    settings: limits,
    audit: (_level: string, event: AuditEvent, fields?: AuditFields) => audited.push({ event, fields }),
  };
  return { deps, sent, audited };
}

describe('rateVerdict', () => {
  const cases: [count: number, verdict: ReturnType<typeof rateVerdict>][] = [
    [1, { kind: 'ok' }],
    [5, { kind: 'ok' }],
    [6, { kind: 'limited', first: true }],
    [7, { kind: 'limited', first: false }],
    [8, { kind: 'block', violations: 3 }],
    [50, { kind: 'block', violations: 45 }],
  ];
  for (const [count, verdict] of cases) {
    it(`judges the ${count}th frame of a window of 5: ${verdict.kind}`, () => {
      expect(rateVerdict(count, limits)).toEqual(verdict);
    });
  }

  it('blocks on the first frame over the limit when no violation is allowed', () => {
    expect(rateVerdict(6, { rateLimitMax: 5, blockAfterViolations: 0 })).toEqual({
      kind: 'block',
      violations: 1,
    });
  });
});

describe('countFrame', () => {
  it('adds one to the user’s counter of the current window and returns the new count', async () => {
    const { deps, sent } = fakeDeps({ Attributes: { count: { N: '4' } } });
    const counted = await countFrame(deps, 'u-1', 1_007);
    expect(counted).toEqual({ count: 4, window: { start: 1_000, lengthS: 10 } });
    expect(sent).toHaveLength(1);
    expect(sent[0]?.name).toBe('UpdateItemCommand');
    expect(sent[0]?.input.Key).toEqual({ id: { S: 'ws#u-1#1000' } });
  });
});

describe('enforceRateLimit', () => {
  const window = { start: 1_000, lengthS: 10 };

  it('lets a frame within the limit through without a word', async () => {
    const { deps, sent, audited } = fakeDeps();
    expect(await enforceRateLimit(deps, sender, { count: 5, window }, 1_003)).toBe('ok');
    expect(sent).toEqual([]);
    expect(audited).toEqual([]);
  });

  it('refuses a frame over the limit with the seconds left in the window, audited only the first time', async () => {
    const { deps, audited } = fakeDeps();
    const first = enforceRateLimit(deps, sender, { count: 6, window }, 1_003);
    await expect(first).rejects.toMatchObject({ code: 'rate_limited', retryAfterS: 7 });
    await expect(first).rejects.toBeInstanceOf(AppError);
    await expect(enforceRateLimit(deps, sender, { count: 7, window }, 1_009)).rejects.toMatchObject({
      code: 'rate_limited',
      retryAfterS: 1,
    });
    expect(audited).toEqual([
      { event: 'ws.rate_limited', fields: { username: 'alice', sub: 'u-1', connectionId: 'c-1' } },
    ]);
  });

  it('blocks a user past blockAfterViolations, by the system, for blockDurationS', async () => {
    const { deps, sent, audited } = fakeDeps();
    expect(await enforceRateLimit(deps, sender, { count: 8, window }, 1_003)).toBe('blocked');
    expect(sent.map((s) => s.name)).toEqual(['PutItemCommand']);
    expect(sent[0]?.input.Item).toMatchObject({
      id: { S: 'user#alice' },
      reason: { S: 'rate_limit_violations' },
      by: { S: 'system' },
      expiresAt: { N: String(1_000 + 600) },
    });
    expect(audited).toEqual([
      {
        event: 'user.blocked',
        fields: {
          username: 'alice',
          sub: 'u-1',
          reason: 'rate_limit_violations',
          count: 3,
          durationS: 600,
          by: 'system',
        },
      },
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { isRetryable, POST_RETRY, RetriesExhausted, withRetries } from '../../../lambdas/core/post-retry.ts';

const named = (name: string, status?: number) =>
  Object.assign(new Error(name), { name, ...(status ? { $metadata: { httpStatusCode: status } } : {}) });

/** A clock that sleeps by moving itself, so backoff costs no real time. */
function fakeTime() {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: async (ms: number) => {
      slept.push(ms);
      now += ms;
    },
  };
}

describe('isRetryable', () => {
  it.each([
    ['LimitExceededException', 429],
    ['ThrottlingException', undefined],
    ['InternalServerErrorException', 500],
    ['ServiceUnavailable', 503],
    ['TimeoutError', undefined],
  ])('retries %s', (name, status) => expect(isRetryable(named(name, status))).toBe(true));

  it.each([
    ['ForbiddenException', 403],
    ['PayloadTooLargeException', 413],
    ['BadRequestException', 400],
  ])('does not retry %s', (name, status) => expect(isRetryable(named(name, status))).toBe(false));

  it('retries a connection reset before any answer', () => {
    expect(isRetryable(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
  });
});

describe('withRetries', () => {
  it('returns the first success and how many retries it took', async () => {
    const t = fakeTime();
    let calls = 0;
    const out = await withRetries(
      async () => {
        if (++calls < 3) throw named('LimitExceededException', 429);
        return 'sent';
      },
      { deadline: 10_000, now: t.now, sleep: t.sleep, random: () => 1 },
    );
    expect(out).toEqual({ value: 'sent', retries: 2 });
    expect(t.slept).toEqual([50, 100]);
  });

  it('stops after the policy’s attempts with the last error and the retries spent', async () => {
    const t = fakeTime();
    let calls = 0;
    const err = await withRetries(
      async () => {
        calls++;
        throw named('InternalServerErrorException', 500);
      },
      { deadline: 1e9, now: t.now, sleep: t.sleep, random: () => 1 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetriesExhausted);
    expect((err as RetriesExhausted).retries).toBe(POST_RETRY.attempts - 1);
    expect((err as RetriesExhausted).name).toBe('InternalServerErrorException');
    expect(calls).toBe(POST_RETRY.attempts);
    expect(Math.max(...t.slept)).toBeLessThanOrEqual(POST_RETRY.maxDelayMs);
  });

  it('starts no retry that would end past the deadline', async () => {
    const t = fakeTime();
    let calls = 0;
    await expect(
      withRetries(
        async () => {
          calls++;
          throw named('LimitExceededException', 429);
        },
        { deadline: 120, now: t.now, sleep: t.sleep, random: () => 1 },
      ),
    ).rejects.toBeInstanceOf(RetriesExhausted);
    expect(calls).toBe(2); // 0 ms: try, sleep 50; 50 ms: try, the next sleep (100) would end at 150 > 120
  });

  it('does not retry a final error', async () => {
    let calls = 0;
    await expect(
      withRetries(
        async () => {
          calls++;
          throw named('ForbiddenException', 403);
        },
        { deadline: Date.now() + 10_000 },
      ),
    ).rejects.toBeInstanceOf(RetriesExhausted);
    expect(calls).toBe(1);
  });
});

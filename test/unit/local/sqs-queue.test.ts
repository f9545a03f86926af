import { describe, expect, it } from 'vitest';
import type { SqsBatchResponse, SqsEvent } from '../../../lambdas/edge/sqs-types.ts';
import { failedIds, type HeldMessage, localQueue, sqsRecord, takeBatch } from '../../../local/sqs-queue.ts';

const bodies = (event: SqsEvent) => event.Records.map((r) => r.body);

describe('the local SQS queue and event source', () => {
  it('invokes the worker with SQS-shaped batches of at most batchSize records, each sent body once', async () => {
    const events: SqsEvent[] = [];
    const queue = localQueue({
      batchSize: 4,
      handler: async (event) => {
        events.push(event);
        return { batchItemFailures: [] };
      },
    });
    await queue.send(Array.from({ length: 10 }, (_, i) => ({ body: `job-${i}` })));
    await queue.drained();
    expect(events.every((e) => e.Records.length <= 4)).toBe(true);
    expect(events.flatMap(bodies).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `job-${i}`).sort());
    const record = events[0]?.Records[0];
    expect(record).toMatchObject({
      eventSource: 'aws:sqs',
      attributes: { ApproximateReceiveCount: '1' },
    });
    expect(record?.messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(record?.eventSourceARN).toMatch(/^arn:aws:sqs:/);
    await queue.close();
  });

  it('delivers again only the records named in batchItemFailures, with a higher receive count, after the visibility timeout', async () => {
    const seen: { body: string; count: string; at: number }[] = [];
    const queue = localQueue({
      visibilityTimeoutMs: 150,
      handler: async (event): Promise<SqsBatchResponse> => {
        for (const r of event.Records)
          seen.push({ body: r.body, count: r.attributes.ApproximateReceiveCount, at: Date.now() });
        const fail = event.Records.filter(
          (r) => r.body === 'b' && r.attributes.ApproximateReceiveCount === '1',
        );
        return { batchItemFailures: fail.map((r) => ({ itemIdentifier: r.messageId })) };
      },
    });
    const start = Date.now();
    await queue.send([{ body: 'a' }, { body: 'b' }, { body: 'c' }]);
    await queue.drained();
    expect(seen.map((s) => `${s.body}${s.count}`).sort()).toEqual(['a1', 'b1', 'b2', 'c1']);
    const again = seen.find((s) => s.body === 'b' && s.count === '2');
    expect((again?.at ?? 0) - start).toBeGreaterThanOrEqual(140);
    await queue.close();
  });

  it('takes a thrown invocation, or an answer naming an unknown record, as a failure of the whole batch', async () => {
    let calls = 0;
    const queue = localQueue({
      visibilityTimeoutMs: 10,
      handler: async (event) => {
        calls++;
        if (calls === 1) throw new Error('crashed');
        if (calls === 2) return { batchItemFailures: [{ itemIdentifier: 'not-a-record' }] };
        expect(event.Records.map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['3', '3']);
        return { batchItemFailures: [] };
      },
    });
    await queue.send([{ body: 'x' }, { body: 'y' }]);
    await queue.drained();
    expect(calls).toBe(3);
    await queue.close();
  });

  it('moves a record that keeps failing to the dead-letter queue after maxReceiveCount receives', async () => {
    const dead: string[] = [];
    let receives = 0;
    const queue = localQueue({
      visibilityTimeoutMs: 5,
      maxReceiveCount: 3,
      onDeadLetter: (r) => dead.push(r.body),
      handler: async (event) => {
        receives += event.Records.length;
        return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
      },
    });
    await queue.send([{ body: 'poison' }]);
    await queue.drained();
    expect(receives).toBe(3);
    expect(dead).toEqual(['poison']);
    expect(queue.deadLetters.map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['3']);
    await queue.close();
  });

  it('holds a delayed entry back for its DelaySeconds and runs at most maxConcurrency invocations at once', async () => {
    let running = 0;
    let peak = 0;
    const at: Record<string, number> = {};
    const queue = localQueue({
      batchSize: 1,
      maxConcurrency: 2,
      handler: async (event) => {
        running++;
        peak = Math.max(peak, running);
        for (const r of event.Records) at[r.body] = Date.now();
        await new Promise((r) => setTimeout(r, 20));
        running--;
        return { batchItemFailures: [] };
      },
    });
    const start = Date.now();
    await queue.send([
      { body: 'late', delayS: 0.3 },
      ...Array.from({ length: 6 }, (_, i) => ({ body: `n${i}` })),
    ]);
    await queue.drained();
    expect(peak).toBe(2);
    expect((at.late ?? 0) - start).toBeGreaterThanOrEqual(290);
    await queue.close();
  });

  it('can hand a record over twice, as a standard queue may (for tests of idempotent workers)', async () => {
    const got: string[] = [];
    const queue = localQueue({
      duplicate: (body) => body === 'twice',
      handler: async (event) => {
        got.push(...bodies(event));
        return { batchItemFailures: [] };
      },
    });
    await queue.send([{ body: 'once' }, { body: 'twice' }]);
    await queue.drained();
    expect(got.sort()).toEqual(['once', 'twice', 'twice']);
    await queue.close();
  });
});

const held = (messageId: string, availableAt: number, receives = 0): HeldMessage => ({
  messageId,
  body: `body of ${messageId}`,
  sentAt: 1000,
  availableAt,
  receives,
});

describe("the queue's batch building", () => {
  it('takes the first batchSize visible messages in order, counts a receive and stamps the first receive once', () => {
    const waiting = [held('a', 0), held('later', 500), held('b', 100, 2), held('c', 100), held('d', 100)];
    waiting[2] = { ...held('b', 100, 2), firstReceiveAt: 50 };
    const batch = takeBatch(waiting, 100, 3);
    expect(batch.map((h) => h.messageId)).toEqual(['a', 'b', 'c']);
    expect(batch.map((h) => h.receives)).toEqual([1, 3, 1]);
    expect(batch.map((h) => h.firstReceiveAt)).toEqual([100, 50, 100]);
    expect(waiting.map((h) => h.messageId)).toEqual(['later', 'd']);
  });

  it('takes nothing while every message is still invisible', () => {
    const waiting = [held('a', 200)];
    expect(takeBatch(waiting, 199, 10)).toEqual([]);
    expect(waiting).toHaveLength(1);
  });
});

describe('the partial batch response', () => {
  const sent = ['m1', 'm2', 'm3'];
  const cases: [string, SqsBatchResponse | undefined, string[]][] = [
    ['no answer', undefined, []],
    ['no failures', { batchItemFailures: [] }, []],
    ['the ids named', { batchItemFailures: [{ itemIdentifier: 'm2' }] }, ['m2']],
    [
      'an id it was not sent',
      { batchItemFailures: [{ itemIdentifier: 'm2' }, { itemIdentifier: 'x' }] },
      sent,
    ],
    ['an empty id', { batchItemFailures: [{ itemIdentifier: '' }] }, sent],
  ];
  for (const [name, answer, expected] of cases) {
    it(`brings back ${expected.length === sent.length ? 'the whole batch' : expected.length === 0 ? 'nothing' : 'only those'} for ${name}`, () => {
      expect([...failedIds(sent, answer)].sort()).toEqual(expected);
    });
  }
});

describe('the SQS record of a held message', () => {
  it("carries the receive count, the timestamps and the body's MD5, as Lambda's event source does", () => {
    const record = sqsRecord(
      { ...held('m1', 0, 2), body: 'hello', firstReceiveAt: 1500 },
      'arn:aws:sqs:local:000000000000:q',
    );
    expect(record).toEqual({
      messageId: 'm1',
      receiptHandle: 'm1#2',
      body: 'hello',
      attributes: {
        ApproximateReceiveCount: '2',
        SentTimestamp: '1000',
        SenderId: 'local',
        ApproximateFirstReceiveTimestamp: '1500',
      },
      messageAttributes: {},
      md5OfBody: '5d41402abc4b2a76b9719d911017c592',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:local:000000000000:q',
      awsRegion: 'local',
    });
  });
});

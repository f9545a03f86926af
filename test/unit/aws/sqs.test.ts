import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sqsQueue } from '../../../lambdas/aws/sqs.ts';
import { verifySigV4 } from '../../../local/sigv4.ts';

const credentials = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'a-secret-of-this-test' };

interface Seen {
  target: string | undefined;
  body: { QueueUrl: string; Entries: { Id: string; MessageBody: string; DelaySeconds?: number }[] };
  signed: boolean;
}

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A stand-in SQS endpoint that checks each request's SigV4 signature (service `sqs`) and answers with `answer`. */
async function standIn(answer: (seen: Seen, n: number) => { status: number; body: unknown }) {
  const seen: Seen[] = [];
  server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const verdict = verifySigV4(
        {
          method: req.method ?? 'POST',
          url: req.url ?? '/',
          headers: req.headers,
          bodySha256: createHash('sha256').update(raw).digest('hex'),
        },
        { credentials, region: 'eu-west-1', service: 'sqs', now: Date.now() },
      );
      const entry: Seen = {
        target: req.headers['x-amz-target'] as string | undefined,
        body: JSON.parse(raw.toString('utf8')) as Seen['body'],
        signed: verdict.ok,
      };
      seen.push(entry);
      const out = answer(entry, seen.length);
      res.writeHead(out.status, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify(out.body));
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { seen, queueUrl: `http://127.0.0.1:${port}/000000000000/fanout` };
}

describe('the lean SQS client', () => {
  it('sends SendMessageBatch, signed as sqs, 10 entries a request, with the queue URL and delays', async () => {
    const { seen, queueUrl } = await standIn(() => ({ status: 200, body: { Successful: [], Failed: [] } }));
    const queue = sqsQueue({ queueUrl, region: 'eu-west-1', credentials });
    await queue.send(
      Array.from({ length: 23 }, (_, i) => ({ body: `job-${i}`, ...(i === 0 ? { delayS: 4 } : {}) })),
    );
    queue.destroy();
    expect(seen).toHaveLength(3);
    expect(seen.every((s) => s.signed && s.target === 'AmazonSQS.SendMessageBatch')).toBe(true);
    expect(seen.every((s) => s.body.QueueUrl === queueUrl)).toBe(true);
    expect(seen.map((s) => s.body.Entries.length).sort()).toEqual([10, 10, 3]);
    const bodies = seen.flatMap((s) => s.body.Entries.map((e) => e.MessageBody)).sort();
    expect(bodies).toEqual(Array.from({ length: 23 }, (_, i) => `job-${i}`).sort());
    expect(seen.flatMap((s) => s.body.Entries).find((e) => e.MessageBody === 'job-0')?.DelaySeconds).toBe(4);
  });

  it('sends again only the entries SQS reported failed, until they are taken', async () => {
    const { seen, queueUrl } = await standIn((s, n) => ({
      status: 200,
      body:
        n === 1 ? { Failed: [{ Id: s.body.Entries[1]?.Id, Code: 'InternalError', SenderFault: false }] } : {},
    }));
    const queue = sqsQueue({ queueUrl, region: 'eu-west-1', credentials });
    await queue.send([{ body: 'a' }, { body: 'b' }, { body: 'c' }]);
    queue.destroy();
    expect(seen.map((s) => s.body.Entries.map((e) => e.MessageBody))).toEqual([['a', 'b', 'c'], ['b']]);
  });

  it('throws, naming the error, when SQS refuses the request or keeps refusing an entry', async () => {
    const refused = await standIn(() => ({
      status: 400,
      body: { __type: 'com.amazonaws.sqs#AccessDenied', message: 'no' },
    }));
    const queue = sqsQueue({ queueUrl: refused.queueUrl, region: 'eu-west-1', credentials });
    await expect(queue.send([{ body: 'a' }])).rejects.toMatchObject({ name: 'AccessDenied' });
    queue.destroy();
    expect(refused.seen).toHaveLength(3);
  });
});

import type { MessageQueue, QueueEntry } from '../core/queue.ts';
import { type AwsCredentials, type SignedHttp, type SignedRequest, signedHttp } from './signed-http.ts';

export interface SqsQueueOptions {
  /** `https://sqs.{region}.amazonaws.com/{account}/{name}`: its origin is the endpoint. */
  readonly queueUrl: string;
  readonly region: string;
  readonly credentials: AwsCredentials;
}

/** SendMessageBatch takes at most 10 entries. */
const BATCH = 10;
const ATTEMPTS = 3;

/**
 * SQS SendMessageBatch (the JSON protocol, SigV4 as `sqs`) over the lean signed client of
 * signed-http.ts, like `@connections` and Secrets Manager: no SDK client in the bundle.
 * Batches of 10 go out in parallel; entries SQS reports failed are sent again (3 tries).
 *
 * @example
 * const queue = sqsQueue({ queueUrl: process.env.FANOUT_QUEUE_URL, region, credentials });
 * await queue.send([{ body: JSON.stringify(job) }]);
 */
export function sqsQueue(options: SqsQueueOptions): MessageQueue & { destroy(): void } {
  const url = new URL(options.queueUrl);
  const http: SignedHttp = signedHttp({
    endpoint: url.origin,
    service: 'sqs',
    region: options.region,
    credentials: options.credentials,
  });
  return {
    async send(entries) {
      const batches: QueueEntry[][] = [];
      for (let i = 0; i < entries.length; i += BATCH) batches.push(entries.slice(i, i + BATCH));
      await Promise.all(batches.map((batch) => sendBatch(http, options.queueUrl, batch)));
    },
    destroy: () => http.destroy(),
  };
}

type PendingEntry = QueueEntry & { readonly id: string };

interface BatchAnswer {
  Failed?: { Id?: string; Code?: string; SenderFault?: boolean }[];
  __type?: string;
}

const encoder = new TextEncoder();

/** One batch, its failed entries sent again until none is left, a sender's fault or the last try. */
async function sendBatch(http: SignedHttp, queueUrl: string, entries: readonly QueueEntry[]): Promise<void> {
  let pending: PendingEntry[] = entries.map((e, i) => ({ ...e, id: String(i) }));
  for (let attempt = 1; pending.length > 0; attempt++) {
    const answer = await http.send(batchRequest(queueUrl, pending), { keepBody: true });
    const parsed = parseBatchAnswer(answer.body);
    const failed = answer.status === 200 ? new Set((parsed.Failed ?? []).map((f) => f.Id)) : undefined;
    pending = failed ? pending.filter((e) => failed.has(e.id)) : pending;
    const senderFault = (parsed.Failed ?? []).some((f) => f.SenderFault);
    if (pending.length > 0 && (attempt >= ATTEMPTS || senderFault)) {
      throw queueError(
        parsed,
        `SQS kept ${pending.length} of ${entries.length} messages (answered ${answer.status})`,
      );
    }
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
  }
}

function batchRequest(queueUrl: string, pending: readonly PendingEntry[]): SignedRequest {
  return {
    method: 'POST',
    path: '/',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': 'AmazonSQS.SendMessageBatch',
    },
    body: encoder.encode(
      JSON.stringify({
        QueueUrl: queueUrl,
        Entries: pending.map((e) => ({
          Id: e.id,
          MessageBody: e.body,
          ...(e.delayS ? { DelaySeconds: Math.min(900, Math.max(0, Math.round(e.delayS))) } : {}),
        })),
      }),
    ),
  };
}

function parseBatchAnswer(body: string): BatchAnswer {
  try {
    return JSON.parse(body || '{}') as BatchAnswer;
  } catch {
    return {};
  }
}

/** Named by the service's error type (or the first failed entry's code) when it is a plain name. */
function queueError(parsed: BatchAnswer, message: string): Error {
  const type =
    String(parsed.__type ?? parsed.Failed?.[0]?.Code ?? '')
      .split('#')
      .pop() ?? '';
  const err = new Error(message);
  err.name = /^[A-Za-z.]{1,64}$/.test(type) ? type : 'QueueError';
  return err;
}

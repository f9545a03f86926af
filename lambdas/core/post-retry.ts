/**
 * How posts to sockets are retried: the one place that decides, whatever transport
 * posts. Throttling (429) and server errors (5xx), and a connection that failed before
 * any answer, are retried with exponential backoff and full jitter, never past a
 * deadline that keeps the whole fan-out inside the function's timeout. Anything else
 * (410 Gone is an answer, not an error; 413 Payload Too Large; 403) is final at once.
 */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  /** The first backoff; each later one doubles, up to `maxDelayMs`. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** How long one fan-out may spend retrying, from its start (the functions' timeout is 10 s). */
  readonly budgetMs: number;
}

export const POST_RETRY: RetryPolicy = Object.freeze({
  attempts: 5,
  baseDelayMs: 50,
  maxDelayMs: 800,
  budgetMs: 4000,
});

const RETRYABLE_NAMES = new Set([
  'LimitExceededException',
  'ThrottlingException',
  'TooManyRequestsException',
  'InternalServerErrorException',
  'InternalFailure',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'TimeoutError',
  'RequestTimeout',
]);
const RETRYABLE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN']);

/** Whether a failed post may succeed if tried again. */
export function isRetryable(err: unknown): boolean {
  const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const status = e?.$metadata?.httpStatusCode;
  if (status === 429 || (status !== undefined && status >= 500)) return true;
  return RETRYABLE_NAMES.has(e?.name ?? '') || RETRYABLE_CODES.has(e?.code ?? '');
}

export interface RetryOptions {
  readonly policy?: RetryPolicy;
  /** Epoch ms after which no retry starts. */
  readonly deadline: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export interface Retried<T> {
  readonly value: T;
  /** Tries after the first. */
  readonly retries: number;
}

/** Thrown when the last try failed; carries its error and how many retries were spent. */
export class RetriesExhausted extends Error {
  constructor(
    readonly last: unknown,
    readonly retries: number,
  ) {
    super('the post failed after retries', { cause: last });
    this.name = (last as Error | undefined)?.name ?? 'RetriesExhausted';
  }
}

/**
 * Runs `call` until it succeeds, fails with a final error, or the tries or the time run out.
 *
 * @example
 * const { value: open } = await withRetries(() => api.post(id, data), { deadline: Date.now() + 4000 });
 */
export async function withRetries<T>(call: () => Promise<T>, options: RetryOptions): Promise<Retried<T>> {
  const policy = options.policy ?? POST_RETRY;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  for (let attempt = 0; ; attempt++) {
    try {
      return { value: await call(), retries: attempt };
    } catch (err) {
      const delay = Math.floor(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt));
      const last = attempt + 1 >= policy.attempts || !isRetryable(err) || now() + delay >= options.deadline;
      if (last) throw new RetriesExhausted(err, attempt);
      await sleep(delay);
    }
  }
}

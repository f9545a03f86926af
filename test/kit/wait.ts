/** How long a test waits for a frame or a condition before it fails, by default. */
export const DEFAULT_WAIT_MS = 3000;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` holds (polled every 10 ms); fails after `timeoutMs` with `what`. */
export async function until(what: string, check: () => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Polls until `read()` satisfies `ok` (every `everyMs`); fails with the last value seen. */
export async function untilRead<T>(
  what: string,
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await read();
    if (ok(last)) return;
    if (Date.now() > deadline) throw new Error(`${what}: timed out; last saw ${JSON.stringify(last)}`);
    await sleep(everyMs);
  }
}

import type { IncomingHttpHeaders } from 'node:http';
import WebSocket from 'ws';
import { DEFAULT_WAIT_MS } from './wait.ts';

/** The origin the local system allows by default. */
export const ALLOWED_ORIGIN = 'http://localhost:3000';

/** A JSON frame as received. */
export type Frame = Record<string, unknown>;
export type FramePredicate = (frame: Frame) => boolean;

export interface OpenOptions {
  /** Offered subprotocols, e.g. `['jwt', token]`. */
  protocols?: string[];
  /** Query parameters appended to the URL (`token`, `ticket`); an array repeats the parameter. */
  query?: Record<string, string | string[]>;
  /** Extra handshake headers (`Authorization`, a second `Origin`...). Array values send the header once per value. */
  headers?: Record<string, string | string[]>;
  /** The `Origin` header; `null` sends none. Default: the allowed local origin. */
  origin?: string | null;
  /** How long to wait for the handshake. Default 5 s. */
  timeoutMs?: number;
}

/** A handshake the gateway answered with an HTTP status instead of upgrading. */
export class Refused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`handshake refused with ${status}`);
    this.name = 'Refused';
  }
}

export interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** An open socket with a queue of received JSON frames. */
export interface Client {
  readonly ws: WebSocket;
  /** The subprotocol the handshake selected ('' for none). */
  readonly protocol: string;
  /** The upgrade response's headers. */
  readonly upgradeHeaders: IncomingHttpHeaders;
  /** Every frame received so far, in order (text frames that are not JSON appear as `{ raw }`). */
  readonly received: readonly Frame[];
  /** Settles when the socket has closed. */
  readonly closed: Promise<Closed>;
  /** Sends an object as JSON, or a string as is. */
  send(frame: Frame | string): void;
  /** The next not-yet-taken frame matching `predicate`; rejects after `timeoutMs`. */
  next(predicate?: FramePredicate, timeoutMs?: number): Promise<Frame>;
  /** Sends a frame with a fresh `id` and waits for the reply that echoes it. */
  request(frame: Frame, timeoutMs?: number): Promise<Frame>;
  /** Fails if a not-yet-taken frame matching `predicate` is or arrives within `ms`. */
  expectNone(predicate: FramePredicate, ms?: number): Promise<void>;
  /** Counts the frames received so far that match `predicate` (taken or not). */
  count(predicate: FramePredicate): number;
  /** Closes the socket and waits for the close to complete. */
  close(): Promise<Closed>;
}

let ids = 0;
const live = new Set<WebSocket>();

/** Cuts every socket this module opened that is still open (for `afterEach`). */
export function terminateAll(): void {
  for (const ws of live) ws.terminate();
  live.clear();
}

/**
 * Opens a WebSocket to `url` and resolves once it is open. A refused handshake rejects
 * with `Refused` carrying the HTTP status (from ws's `unexpected-response`).
 */
export function openClient(url: string, options: OpenOptions = {}): Promise<Client> {
  const target = new URL(url);
  for (const [k, v] of Object.entries(options.query ?? {})) {
    for (const value of Array.isArray(v) ? v : [v]) target.searchParams.append(k, value);
  }
  const origin = options.origin === undefined ? ALLOWED_ORIGIN : options.origin;
  const ws = new WebSocket(target.toString(), options.protocols ?? [], {
    ...(origin === null ? {} : { origin }),
    headers: options.headers as Record<string, string> | undefined,
    handshakeTimeout: options.timeoutMs ?? 5000,
  });
  live.add(ws);
  ws.once('close', () => live.delete(ws));
  const received: Frame[] = [];
  const taken = new Set<Frame>();
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  ws.on('message', (data, isBinary) => {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data as ArrayBuffer).toString();
    let frame: Frame;
    try {
      const value = JSON.parse(text) as unknown;
      frame = typeof value === 'object' && value !== null ? (value as Frame) : { raw: text };
    } catch {
      frame = { raw: text, binary: isBinary };
    }
    received.push(frame);
    notify();
  });
  const closed = new Promise<Closed>((resolve) => {
    ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString('utf8') });
      notify();
    });
  });

  const take = (predicate: FramePredicate): Frame | undefined => {
    const found = received.find((f) => !taken.has(f) && predicate(f));
    if (found) taken.add(found);
    return found;
  };

  const client = (upgradeHeaders: IncomingHttpHeaders): Client => ({
    ws,
    protocol: ws.protocol,
    upgradeHeaders,
    received,
    closed,
    send(frame) {
      ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    },
    next(predicate = () => true, timeoutMs = DEFAULT_WAIT_MS) {
      const seen = () => JSON.stringify(received).slice(0, 2000);
      const now = take(predicate);
      if (now) return Promise.resolve(now);
      if (ws.readyState === WebSocket.CLOSED) {
        return Promise.reject(new Error(`the socket closed without a matching frame; received ${seen()}`));
      }
      return new Promise<Frame>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching frame within ${timeoutMs} ms; received ${seen()}`));
        }, timeoutMs);
        const check = () => {
          const found = take(predicate);
          if (!found && ws.readyState !== WebSocket.CLOSED) return;
          clearTimeout(timer);
          waiters.delete(check);
          if (found) resolve(found);
          else reject(new Error(`the socket closed without a matching frame; received ${seen()}`));
        };
        waiters.add(check);
      });
    },
    request(frame, timeoutMs) {
      const id = `r${++ids}`;
      ws.send(JSON.stringify({ ...frame, id }));
      return this.next((f) => f.id === id, timeoutMs);
    },
    async expectNone(predicate, ms = 200) {
      const match = () => received.find((f) => !taken.has(f) && predicate(f));
      const early = match();
      if (early) throw new Error(`unexpected frame ${JSON.stringify(early)}`);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          resolve();
        }, ms);
        const check = () => {
          const found = match();
          if (!found) return;
          clearTimeout(timer);
          waiters.delete(check);
          reject(new Error(`unexpected frame ${JSON.stringify(found)}`));
        };
        waiters.add(check);
      });
    },
    count(predicate) {
      return received.filter(predicate).length;
    },
    close() {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
      return closed;
    },
  });

  return new Promise<Client>((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    let settled = false;
    ws.once('upgrade', (res) => {
      headers = res.headers;
    });
    ws.once('open', () => {
      settled = true;
      resolve(client(headers));
    });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        settled = true;
        reject(new Refused(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
        ws.terminate();
      });
    });
    ws.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
  });
}

/** The HTTP status of a handshake that must be refused; fails if the socket opens. */
export async function refusalStatus(url: string, options: OpenOptions = {}): Promise<number> {
  try {
    const client = await openClient(url, options);
    await client.close();
  } catch (err) {
    if (err instanceof Refused) return err.status;
    throw err;
  }
  throw new Error('the handshake was accepted');
}

/** Frame predicates used across the tests. */
export const is =
  (type: string, fields: Frame = {}): FramePredicate =>
  (f) =>
    f.type === type && Object.entries(fields).every(([k, v]) => f[k] === v);

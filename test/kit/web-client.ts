import WebSocket from 'ws';
import { socketsOfUser } from '../../lambdas/core/socket-rows.ts';
import {
  type ClientEvents,
  type ClientOptions,
  RealtimeClient,
  type WebSocketLike,
} from '../../web/client.ts';
import { PASSWORD, type TestSystem } from './system.ts';
import { ALLOWED_ORIGIN } from './ws-client.ts';

/** A `ws` socket with the allowed `Origin`, as a browser on the demo page would send. */
export function nodeSocket(origin = ALLOWED_ORIGIN) {
  return (url: string, protocols: string[]): WebSocketLike =>
    new WebSocket(url, protocols, { origin }) as unknown as WebSocketLike;
}

const clients = new Set<RealtimeClient>();

/** A client of `system`, closed by `closeClients()`. */
export function clientFor(system: TestSystem, options: Partial<ClientOptions> = {}): RealtimeClient {
  const client = new RealtimeClient({
    httpUrl: system.httpUrl,
    wsUrl: system.wsUrl,
    createSocket: nodeSocket(),
    reconnectBaseMs: 50,
    ...options,
  });
  clients.add(client);
  return client;
}

export function closeClients(): void {
  for (const c of clients) c.close();
  clients.clear();
}

let users = 0;
/** Registers a fresh user and logs the client in as them. */
export async function loggedIn(client: RealtimeClient, prefix = 'user'): Promise<string> {
  const username = `${prefix}${++users}`;
  await client.register(username, PASSWORD);
  await client.login(username, PASSWORD);
  return username;
}

/** The next `type` event of the client, or a failure after `timeoutMs`. */
export function nextEvent<K extends keyof ClientEvents>(
  client: RealtimeClient,
  type: K,
  predicate: (value: ClientEvents[K]) => boolean = () => true,
  timeoutMs = 5000,
): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${String(type)} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on(type, (value) => {
      if (!predicate(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

/** Every event of `type` the client emits from now on. */
export function record<K extends keyof ClientEvents>(client: RealtimeClient, type: K): ClientEvents[K][] {
  const seen: ClientEvents[K][] = [];
  client.on(type, (value) => seen.push(value));
  return seen;
}

/** The connection ids the server holds for a user. */
export async function connectionIds(system: TestSystem, username: string): Promise<string[]> {
  return (await socketsOfUser(system.deps, username)).map((c) => c.connectionId);
}

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { leanDynamoClient } from '../lambdas/aws/dynamodb.ts';
import { createAudit } from '../lambdas/core/audit.ts';
import { type Clock, systemClock } from '../lambdas/core/clock.ts';
import type { ConnectionsApi, Deps } from '../lambdas/core/deps.ts';
import type { FanoutTuning } from '../lambdas/core/fanout.ts';
import { localTableNames } from '../lambdas/core/tables.ts';
import { CORS } from '../lambdas/edge/cors.ts';
import { type Closable, ClosingOrder } from './closing-order.ts';
import { type LocalConfig, StartupError } from './config.ts';
import { checkDataDir, findRunning, paths, removeRunning, writeRunning } from './data-dir.ts';
import { ensureTables, type LocalDynamo, randomCredentials, startDynalite } from './dynamo.ts';
import { httpRoutes, queueWorker, scheduledJobs, wsRoutes } from './handlers.ts';
import { type HttpGateway, startHttpGateway } from './http-gateway.ts';
import { fileKeySource } from './key-file.ts';
import { type LocalQueue, type LocalQueueOptions, localQueue } from './sqs-queue.ts';
import { demoPage } from './static.ts';
import { startWsGateway, type WsGateway } from './ws-gateway.ts';
import { localConnectionsApi, type ManagementFault } from './ws-management.ts';

export interface LocalSystem {
  readonly httpUrl: string;
  readonly wsUrl: string;
  readonly dynamoEndpoint: string;
  readonly deps: Deps;
  /** The fan-out queue of big rooms and its worker (local/sqs-queue.ts). */
  readonly queue: LocalQueue;
  /** Runs the scheduled sweeper once, now. */
  sweep(): Promise<void>;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Where audit lines go (stdout by default). */
  readonly write?: (line: string) => void;
  readonly clock?: Clock;
  /** Idle and maximum socket lifetimes (API Gateway's 10 minutes and 2 hours by default). */
  readonly idleTimeoutMs?: number;
  readonly maxConnectionMs?: number;
  /** Runs the sweeper every `sweepIntervalS` (default true; tests call `sweep()` instead). */
  readonly sweeperTimer?: boolean;
  /** Tests only: makes `@connections` answer 410, 429 or 500 on demand (local/ws-management.ts). */
  readonly managementFault?: ManagementFault;
  /** Tests and the bench: the fan-out's shape (lambdas/core/fanout.ts) and the local queue's settings. */
  readonly fanout?: Partial<FanoutTuning>;
  readonly queue?: Omit<LocalQueueOptions, 'handler' | 'onDeadLetter'>;
}

/** Turns a failed listen into one line naming the setting to change. */
function listenProblem(setting: 'PORT' | 'WS_PORT', port: number, host: string) {
  return (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new StartupError(
        `${setting} ${port} is in use (another dev server, or another npm start?): choose a free port, e.g. ${setting}=${port + 100}`,
      );
    }
    if (code === 'EACCES')
      throw new StartupError(`${setting} ${port} needs privileges this user lacks: choose a port above 1023`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw new StartupError(
        `HOST ${host} is not an address of this machine: use 127.0.0.1, or 0.0.0.0 for every interface`,
      );
    throw err;
  };
}

/**
 * Starts the whole local system: dynalite on the data folder (tables created if
 * missing), the signing keys kept beside it, the HTTP API and the WebSocket API (with
 * its `@connections` API) serving the Lambda handlers, and the sweeper on a timer.
 * `close()` stops taking requests and sockets, then flushes and closes the store.
 */
export async function startLocal(config: LocalConfig, options: StartOptions = {}): Promise<LocalSystem> {
  const { dataDir } = config;
  if (dataDir) await claimDataDir(dataDir);
  const clock = options.clock ?? systemClock;
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  // Closed in reverse order of opening: front doors first, the store last.
  const opened = new ClosingOrder();
  try {
    const { dynamo, db, tables } = await openStore(dataDir, opened);
    const keys = await signingKeys(dataDir, clock);

    // The @connections endpoint exists once the gateway listens; handlers reach it lazily.
    const management = lateConnectionsApi();
    // The worker is built from the same deps it is fed by: reached lazily, like @connections.
    const worker = late<QueueWorker>('the fan-out worker is not built yet');
    const audit = createAudit(write, clock);
    const queue = fanoutQueue(options.queue, worker, audit);
    const deps: Deps = {
      settings: config.settings,
      db,
      tables,
      keys,
      clock,
      audit,
      api: management.api,
      queue,
      ...(options.fanout ? { fanout: options.fanout } : {}),
    };
    worker.set(await queueWorker(deps));

    const ws = await startWebSocketApi(config, options, deps);
    management.attach(signedConnectionsApi(ws, opened));
    opened.push(ws);
    // Closed before the gateway and the store: running jobs finish, waiting ones are dropped.
    opened.push(queue);

    const sweep = await sweeper(deps);
    if (options.sweeperTimer !== false)
      opened.push(sweepEvery(sweep, config.settings.sweepIntervalS * 1000, audit));
    const http = await startHttpApi(config, deps, ws);
    opened.push(http);
    if (dataDir) {
      await recordRunning(dataDir, dynamo, http, ws);
      opened.push({ close: () => removeRunning(dataDir) });
    }
    return {
      httpUrl: http.url,
      wsUrl: ws.url,
      dynamoEndpoint: dynamo.endpoint,
      deps,
      queue,
      sweep,
      close: () => opened.close(),
    };
  } catch (err) {
    await opened.close();
    throw err;
  }
}

type QueueWorker = Awaited<ReturnType<typeof queueWorker>>;

/** Refuses a data folder that is not usable, or that another local system is running on. */
async function claimDataDir(dataDir: string): Promise<void> {
  await checkDataDir(dataDir);
  const running = await findRunning(dataDir);
  if (running) {
    throw new StartupError(
      `another local system (pid ${running.pid}) is using ${dataDir}; stop it or set DATA_DIR`,
    );
  }
}

/** dynalite on the data folder (in memory without one), its client, and every table. */
async function openStore(dataDir: string | undefined, opened: ClosingOrder) {
  const storeCredentials = randomCredentials();
  const dynamo: LocalDynamo = await startDynalite({
    path: dataDir ? paths(dataDir).dynamo : undefined,
    credentials: storeCredentials,
  }).catch((err: unknown) => {
    throw new StartupError(
      `DATA_DIR ${dataDir}: the store in its dynamo/ folder did not open: ${(err as Error).message}`,
    );
  });
  opened.push(dynamo);
  // The very client the functions use on Lambda (lambdas/aws/dynamodb.ts), signed with the store's credentials.
  const db: DynamoDBClient = leanDynamoClient({
    endpoint: dynamo.endpoint,
    region: 'local',
    credentials: storeCredentials,
  });
  opened.push({ close: async () => db.destroy() });
  const tables = localTableNames();
  await ensureTables(db, tables);
  return { dynamo, db, tables };
}

/** The signing keys kept beside the store (in memory without a data folder). */
async function signingKeys(dataDir: string | undefined, clock: Clock) {
  const keys = fileKeySource(dataDir ? paths(dataDir).keys : undefined, () => new Date(clock.now()));
  await keys.publicKeys(); // create or load the keys now, not on the first request
  return keys;
}

/** A value set once the part that makes it has started; reading it before then is a bug. */
function late<T>(notYet: string): { get(): T; set(value: T): void } {
  let value: T | undefined;
  return {
    get: () => {
      if (value === undefined) throw new Error(notYet);
      return value;
    },
    set: (v) => {
      value = v;
    },
  };
}

/** The `@connections` API the handlers are given before the gateway listens: it reaches the one attached later. */
function lateConnectionsApi(): { api: ConnectionsApi; attach(endpoint: ConnectionsApi): void } {
  const endpoint = late<ConnectionsApi>('the WebSocket gateway is not listening yet');
  return {
    api: {
      post: (id, data) => endpoint.get().post(id, data),
      close: (id) => endpoint.get().close(id),
      exists: (id) => endpoint.get().exists(id),
    },
    attach: endpoint.set,
  };
}

/** The fan-out queue of big rooms, feeding the worker; a record that keeps failing is audited. */
function fanoutQueue(
  settings: StartOptions['queue'],
  worker: { get(): QueueWorker },
  audit: Deps['audit'],
): LocalQueue {
  return localQueue({
    ...settings,
    handler: (event) => worker.get()(event),
    onDeadLetter: () => audit('error', 'error', { reason: 'fanout_dead_letter' }),
  });
}

/** The WebSocket API on `WS_PORT`, its `$default` results sent back as route responses. */
async function startWebSocketApi(config: LocalConfig, options: StartOptions, deps: Deps): Promise<WsGateway> {
  return startWsGateway({
    routes: await wsRoutes(deps),
    host: config.host,
    port: config.wsPort,
    returnResponseRoutes: ['$default'],
    ...(options.idleTimeoutMs ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.maxConnectionMs ? { maxConnectionMs: options.maxConnectionMs } : {}),
    ...(options.managementFault ? { managementFault: options.managementFault } : {}),
  }).catch(listenProblem('WS_PORT', config.wsPort, config.host));
}

/** The gateway's `@connections` API as the handlers call it: signed as on AWS, with the gateway's secret of this run, over a keep-alive agent. */
function signedConnectionsApi(ws: WsGateway, opened: ClosingOrder): ConnectionsApi {
  const signed = localConnectionsApi(ws.managementEndpoint, ws.managementCredentials, ws.region);
  opened.push({ close: async () => signed.destroy() });
  return signed;
}

/** The HTTP API on `PORT`, with the CORS lists of the deployed one and the demo page for what no route takes. */
async function startHttpApi(config: LocalConfig, deps: Deps, ws: WsGateway): Promise<HttpGateway> {
  const { allowedOrigins } = config.settings;
  const routes = await httpRoutes(deps);
  return startHttpGateway({
    routes,
    cors: { ...CORS, allowOrigins: allowedOrigins },
    fallback: demoPage({ wsUrl: ws.url, allowedOrigins }),
    host: config.host,
    port: config.port,
  }).catch(listenProblem('PORT', config.port, config.host));
}

/** The scheduled jobs, run one after the other: what the sweeper's schedule runs on AWS. */
async function sweeper(deps: Deps): Promise<() => Promise<void>> {
  const jobs = await scheduledJobs(deps);
  return async () => {
    for (const job of jobs) await job();
  };
}

/** Runs `sweep` every `intervalMs`, one run at a time; closing stops the timer and waits for a run under way. */
function sweepEvery(sweep: () => Promise<void>, intervalMs: number, audit: Deps['audit']): Closable {
  let sweeping: Promise<void> | undefined;
  const timer = setInterval(() => {
    sweeping ??= sweep()
      .catch((err: unknown) =>
        audit('error', 'error', { reason: 'sweep_failed', errorName: (err as Error).name }),
      )
      .finally(() => {
        sweeping = undefined;
      });
  }, intervalMs);
  timer.unref();
  return {
    close: async () => {
      clearInterval(timer);
      await sweeping;
    },
  };
}

/** Writes running.json: where this run's store and gateways are, and the secrets to reach them. */
async function recordRunning(
  dataDir: string,
  dynamo: LocalDynamo,
  http: HttpGateway,
  ws: WsGateway,
): Promise<void> {
  await writeRunning(dataDir, {
    pid: process.pid,
    dynamoEndpoint: dynamo.endpoint,
    dynamoCredentials: dynamo.credentials,
    httpUrl: http.url,
    wsUrl: ws.url,
    managementEndpoint: ws.managementEndpoint,
    managementCredentials: ws.managementCredentials,
  });
}

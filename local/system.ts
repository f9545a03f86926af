import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { leanDynamoClient } from '../lambdas/aws/dynamodb.ts';
import { createAudit } from '../lambdas/core/audit.ts';
import { type Clock, systemClock } from '../lambdas/core/clock.ts';
import type { ConnectionsApi, Deps } from '../lambdas/core/deps.ts';
import type { FanoutTuning } from '../lambdas/core/fanout.ts';
import { localTableNames } from '../lambdas/core/tables.ts';
import { CORS } from '../lambdas/edge/cors.ts';
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

interface Closable {
  close(): Promise<void>;
}

/**
 * Starts the whole local system: dynalite on the data folder (tables created if
 * missing), the signing keys kept beside it, the HTTP API and the WebSocket API (with
 * its `@connections` API) serving the Lambda handlers, and the sweeper on a timer.
 * `close()` stops taking requests and sockets, then flushes and closes the store.
 */
export async function startLocal(config: LocalConfig, options: StartOptions = {}): Promise<LocalSystem> {
  const { dataDir } = config;
  if (dataDir) {
    await checkDataDir(dataDir);
    const running = await findRunning(dataDir);
    if (running) {
      throw new StartupError(
        `another local system (pid ${running.pid}) is using ${dataDir}; stop it or set DATA_DIR`,
      );
    }
  }
  const clock = options.clock ?? systemClock;
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  // Closed in reverse order of opening: front doors first, the store last.
  const opened: Closable[] = [];
  const closeAll = async () => {
    for (const part of opened.splice(0).reverse()) await part.close().catch(() => {});
  };
  try {
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
    const keys = fileKeySource(dataDir ? paths(dataDir).keys : undefined, () => new Date(clock.now()));
    await keys.publicKeys(); // create or load the keys now, not on the first request

    // The @connections endpoint exists once the gateway listens; handlers reach it lazily.
    let management: ConnectionsApi | undefined;
    const ready = (): ConnectionsApi => {
      if (!management) throw new Error('the WebSocket gateway is not listening yet');
      return management;
    };
    const api: ConnectionsApi = {
      post: (id, data) => ready().post(id, data),
      close: (id) => ready().close(id),
      exists: (id) => ready().exists(id),
    };
    // The worker is built from the same deps it is fed by: reached lazily, like @connections.
    let worker: Awaited<ReturnType<typeof queueWorker>> | undefined;
    const audit = createAudit(write, clock);
    const queue = localQueue({
      ...options.queue,
      handler: (event) => {
        if (!worker) throw new Error('the fan-out worker is not built yet');
        return worker(event);
      },
      onDeadLetter: () => audit('error', 'error', { reason: 'fanout_dead_letter' }),
    });
    const deps: Deps = {
      settings: config.settings,
      db,
      tables,
      keys,
      clock,
      audit,
      api,
      queue,
      ...(options.fanout ? { fanout: options.fanout } : {}),
    };
    worker = await queueWorker(deps);

    const ws: WsGateway = await startWsGateway({
      routes: await wsRoutes(deps),
      host: config.host,
      port: config.wsPort,
      returnResponseRoutes: ['$default'],
      ...(options.idleTimeoutMs ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
      ...(options.maxConnectionMs ? { maxConnectionMs: options.maxConnectionMs } : {}),
      ...(options.managementFault ? { managementFault: options.managementFault } : {}),
    }).catch(listenProblem('WS_PORT', config.wsPort, config.host));
    // Signed as on AWS, with the gateway's secret of this run, over a keep-alive agent.
    const signed = localConnectionsApi(ws.managementEndpoint, ws.managementCredentials, ws.region);
    opened.push({ close: async () => signed.destroy() });
    opened.push(ws);
    // Closed before the gateway and the store: running jobs finish, waiting ones are dropped.
    opened.push(queue);
    management = signed;

    const jobs = await scheduledJobs(deps);
    const sweepNow = async () => {
      for (const job of jobs) await job();
    };
    let sweeping: Promise<void> | undefined;
    if (options.sweeperTimer !== false) {
      const timer = setInterval(() => {
        sweeping ??= sweepNow()
          .catch((err: unknown) =>
            deps.audit('error', 'error', { reason: 'sweep_failed', errorName: (err as Error).name }),
          )
          .finally(() => {
            sweeping = undefined;
          });
      }, config.settings.sweepIntervalS * 1000);
      timer.unref();
      opened.push({
        close: async () => {
          clearInterval(timer);
          await sweeping;
        },
      });
    }

    const http: HttpGateway = await startHttpGateway({
      routes: await httpRoutes(deps),
      host: config.host,
      port: config.port,
      cors: { ...CORS, allowOrigins: config.settings.allowedOrigins },
      fallback: demoPage({ wsUrl: ws.url, allowedOrigins: config.settings.allowedOrigins }),
    }).catch(listenProblem('PORT', config.port, config.host));
    opened.push(http);
    if (dataDir) {
      await writeRunning(dataDir, {
        pid: process.pid,
        dynamoEndpoint: dynamo.endpoint,
        dynamoCredentials: dynamo.credentials,
        httpUrl: http.url,
        wsUrl: ws.url,
        managementEndpoint: ws.managementEndpoint,
        managementCredentials: ws.managementCredentials,
      });
      opened.push({ close: () => removeRunning(dataDir) });
    }
    let closing: Promise<void> | undefined;
    return {
      httpUrl: http.url,
      wsUrl: ws.url,
      dynamoEndpoint: dynamo.endpoint,
      deps,
      queue,
      sweep: sweepNow,
      close: () => {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

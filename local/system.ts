import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createAudit } from '../lambdas/core/audit.ts';
import { type Clock, systemClock } from '../lambdas/core/clock.ts';
import type { Deps } from '../lambdas/core/deps.ts';
import { fileKeySource } from '../lambdas/core/keys.ts';
import { localTableNames } from '../lambdas/core/tables.ts';
import type { LocalConfig } from './config.ts';
import { findRunning, paths, removeRunning, writeRunning } from './data-dir.ts';
import { ensureTables, type LocalDynamo, localDynamoClient, startDynalite } from './dynamo.ts';
import { httpRoutes } from './handlers.ts';
import { type HttpGateway, startHttpGateway } from './http-gateway.ts';

export interface LocalSystem {
  readonly httpUrl: string;
  readonly wsUrl: string;
  readonly dynamoEndpoint: string;
  readonly deps: Deps;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Where audit lines go (stdout by default). */
  readonly write?: (line: string) => void;
  readonly clock?: Clock;
}

/**
 * Starts the whole local system: dynalite on the data folder (tables created if
 * missing), the signing keys kept beside it, and the HTTP API serving the Lambda
 * handlers. `close()` stops taking requests, then flushes and closes the store.
 */
export async function startLocal(config: LocalConfig, options: StartOptions = {}): Promise<LocalSystem> {
  const { dataDir } = config;
  if (dataDir) {
    const running = await findRunning(dataDir);
    if (running)
      throw new Error(
        `another local system (pid ${running.pid}) is using ${dataDir}; stop it or set DATA_DIR`,
      );
  }
  const clock = options.clock ?? systemClock;
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const opened: { close(): Promise<void> }[] = [];
  let db: DynamoDBClient | undefined;
  try {
    const dynamo: LocalDynamo = await startDynalite({ path: dataDir ? paths(dataDir).dynamo : undefined });
    opened.push(dynamo);
    db = localDynamoClient(dynamo.endpoint);
    const tables = localTableNames();
    await ensureTables(db, tables);
    const keys = fileKeySource(dataDir ? paths(dataDir).keys : undefined, () => new Date(clock.now()));
    await keys.publicKeys(); // create or load the keys now, not on the first request
    const deps: Deps = {
      settings: config.settings,
      db,
      tables,
      keys,
      clock,
      audit: createAudit(write, clock),
    };

    const http: HttpGateway = await startHttpGateway({
      routes: httpRoutes(deps),
      host: config.host,
      port: config.port,
      cors: {
        allowOrigins: config.settings.allowedOrigins,
        allowHeaders: ['authorization', 'content-type'],
        allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
        maxAgeS: 600,
      },
    });
    opened.unshift(http);
    const wsUrl = `ws://${config.host}:${config.wsPort}`;
    if (dataDir)
      await writeRunning(dataDir, {
        pid: process.pid,
        dynamoEndpoint: dynamo.endpoint,
        httpUrl: http.url,
        wsUrl,
      });
    const dbClient = db;
    let closing: Promise<void> | undefined;
    return {
      httpUrl: http.url,
      wsUrl,
      dynamoEndpoint: dynamo.endpoint,
      deps,
      close: () => {
        closing ??= (async () => {
          for (const part of opened) await part.close();
          dbClient.destroy();
          if (dataDir) await removeRunning(dataDir);
        })();
        return closing;
      },
    };
  } catch (err) {
    db?.destroy();
    for (const part of opened) await part.close().catch(() => {});
    throw err;
  }
}

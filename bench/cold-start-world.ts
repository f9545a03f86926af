import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateStoredKey, publicJwkOf } from '../lambdas/core/keys.ts';
import { putSocketRow } from '../lambdas/core/socket-rows.ts';
import { localTableNames, TABLE_KEYS, tableEnvName } from '../lambdas/core/tables.ts';
import type { FunctionSpec } from '../lambdas/functions.ts';
import { makeLoginHandler } from '../lambdas/http-login.ts';
import { makeRegisterHandler } from '../lambdas/http-register.ts';
import { runtime } from '../lambdas/runtime.ts';
import { REPO_ROOT } from '../lib/paths.ts';
import { ensureTables, localDynamoClient, startDynalite } from '../local/dynamo.ts';
import { claimsOfToken } from '../test/kit/system.ts';
import {
  authorizerEvent,
  connectEvent,
  connectionInfo,
  disconnectEvent,
  httpEvent,
  messageEvent,
} from './events.ts';

const run = promisify(execFile);
const CHILD = join(REPO_ROOT, 'bench', 'cold-start-child.mjs');
const PASSWORD = 'correct horse battery staple';

/** What one fresh `node` process reported after importing a bundle and handling one event. */
export interface ChildRun {
  readonly importMs: number;
  readonly handleMs: number;
  readonly bootMs: number;
  /** The answer's `statusCode`, the authorizer's `Effect`, or `ok` / `none`. */
  readonly outcome: unknown;
  /** The whole process, Node's own start-up included. */
  readonly wallMs: number;
}

/**
 * A fresh `node` imports `file` and handles the event in `eventFile` (bench/cold-start-child.mjs),
 * as the Lambda runtime does on a new container, with `env` as its whole environment.
 */
export async function runInChild(file: string, eventFile: string, env: NodeJS.ProcessEnv): Promise<ChildRun> {
  const started = performance.now();
  const { stdout } = await run(
    process.execPath,
    [...(file.endsWith('.mjs') ? ['--enable-source-maps'] : []), CHILD, file, eventFile],
    { env, cwd: REPO_ROOT, timeout: 60_000 },
  );
  const wallMs = performance.now() - started;
  // The audit log shares stdout; the timings are the last line.
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return { ...(JSON.parse(last) as Omit<ChildRun, 'wallMs'>), wallMs };
}

/**
 * Everything a function's cold start touches, on this machine: dynalite with the product's tables,
 * a stand-in for Secrets Manager's GetSecretValue (the key sets) and `@connections` (answers 200),
 * a registered user with a socket, and for each function of the manifest the environment the stack
 * gives it and a real event for its route.
 */
export interface ColdStartWorld {
  /** Region, dummy credentials, endpoints, settings and table names: what every function gets. */
  readonly baseEnv: NodeJS.ProcessEnv;
  /** The environment lib/product-functions.ts gives the function (with `keyless`: a public key ARN added). */
  envFor(spec: FunctionSpec, keyless?: boolean): NodeJS.ProcessEnv;
  /** A fresh event for the function's route (a new username for register, a fresh token pair where one is spent). */
  eventFor(spec: FunctionSpec): Promise<unknown>;
  /** `eventFor`, written to a JSON file for `runInChild`. */
  eventFileFor(spec: FunctionSpec, file: string): Promise<string>;
  close(): Promise<void>;
}

/** Answers each function's event is expected to get in the world (the user holds the `user` role alone). */
export const EXPECTED_OUTCOMES: Readonly<Record<string, string>> = {
  'http-register': '201',
  'http-login': '200',
  'http-refresh': '200',
  'http-logout': '204',
  'http-me': '200',
  'http-jwks': '200',
  'http-health': '200',
  'ws-authorizer': 'Allow',
  'ws-connect': '200',
  'ws-default': '200',
  'ws-disconnect': '200',
  sweeper: 'ok',
  'http-ws-ticket': '200',
  'http-token-exchange': '404', // no OIDC issuer configured
};

async function fakeAws(secrets: Record<string, string>): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      if (String(req.headers['x-amz-target'] ?? '').endsWith('GetSecretValue')) {
        const id = (JSON.parse(body) as { SecretId: string }).SecretId;
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ ARN: id, Name: id, SecretString: secrets[id] }));
        return;
      }
      res.writeHead(200);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function startColdStartWorld(prefix = 'cold-'): Promise<ColdStartWorld> {
  const dynamo = await startDynalite({});
  const tables = localTableNames(prefix);
  const key = await generateStoredKey(new Date());
  const secrets = {
    'arn:bench:signing': JSON.stringify({ keys: [key] }),
    'arn:bench:public': JSON.stringify({ keys: [publicJwkOf(key)] }),
  };
  const aws = await fakeAws(secrets);
  const close = async () => {
    await aws.close();
    await dynamo.close();
  };
  const baseEnv = coldStartEnv(aws.url, dynamo.endpoint, tables);
  try {
    await ensureTables(localDynamoClient(dynamo.endpoint), tables);
    // This process's own deps, from the same environment as the functions', seed the user and tokens.
    const deps = runtime({ ...baseEnv, SIGNING_KEYS_SECRET_ARN: 'arn:bench:signing' });
    const eventFor = eventMaker(await seedColdUser(deps));
    return {
      baseEnv,
      envFor: (spec, keyless = false) => ({
        ...baseEnv,
        AWS_LAMBDA_FUNCTION_NAME: spec.name,
        ...(spec.keys === 'sign' ? { SIGNING_KEYS_SECRET_ARN: 'arn:bench:signing' } : {}),
        ...(spec.keys === 'verify' || keyless ? { PUBLIC_KEYS_SECRET_ARN: 'arn:bench:public' } : {}),
        ...(spec.manageConnections ? { WS_MANAGEMENT_ENDPOINT: `${aws.url}/bench` } : {}),
      }),
      eventFor,
      async eventFileFor(spec, file) {
        writeFileSync(file, JSON.stringify(await eventFor(spec)));
        return file;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The environment every function starts in: the fake AWS endpoint, dynalite, the tables and settings. */
function coldStartEnv(awsUrl: string, dynamoEndpoint: string, tables: ReturnType<typeof localTableNames>) {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: awsUrl,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    DYNAMODB_ENDPOINT: dynamoEndpoint,
    TOKEN_ISSUER: 'https://bench.example',
    TOKEN_AUDIENCE: 'bench',
    ALLOWED_ORIGINS: 'http://localhost:3000',
    RATE_LIMIT_MAX: '100000',
    // Every cold start of ws-connect opens another socket of the one user.
    MAX_CONNECTIONS_PER_USER: '1000',
    ...Object.fromEntries(TABLE_KEYS.map((k) => [tableEnvName(k), tables[k]])),
  };
  return env;
}

type TokenPair = { access_token: string; refresh_token: string; claims: ReturnType<typeof claimsOfToken> };

/** The user `cold`, a fresh token pair on demand, and one socket of theirs with its row stored. */
interface ColdUser {
  readonly freshPair: () => Promise<TokenPair>;
  readonly socket: ReturnType<typeof connectionInfo>;
  readonly socketPair: TokenPair;
}

async function seedColdUser(deps: ReturnType<typeof runtime>): Promise<ColdUser> {
  const register = makeRegisterHandler(deps);
  const login = makeLoginHandler(deps);
  const reg = await register(
    httpEvent('POST /auth/register', { body: { username: 'cold', password: PASSWORD } }),
  );
  if ((reg as { statusCode: number }).statusCode !== 201)
    throw new Error(`could not register the cold-start user: ${JSON.stringify(reg)}`);
  const freshPair = async () => {
    const res = (await login(
      httpEvent('POST /auth/login', { body: { username: 'cold', password: PASSWORD } }),
    )) as { body: string };
    const pair = JSON.parse(res.body) as { access_token: string; refresh_token: string };
    return { ...pair, claims: claimsOfToken(pair.access_token) };
  };
  const socket = connectionInfo();
  const socketPair = await freshPair();
  await putSocketRow(deps, {
    ...socketPair.claims,
    connectionId: socket.connectionId,
    ip: '203.0.113.7',
    connectedAt: Date.now(),
    rooms: [],
  });
  return { freshPair, socket, socketPair };
}

/** The event each function is invoked with, as API Gateway (or the scheduler, or SQS) would send it. */
function eventMaker({ freshPair, socket, socketPair }: ColdUser): (spec: FunctionSpec) => Promise<unknown> {
  let registered = 0;
  return async (spec) => {
    switch (spec.name) {
      case 'http-register':
        return httpEvent('POST /auth/register', {
          body: { username: `cold${++registered}`, password: PASSWORD },
        });
      case 'http-login':
        return httpEvent('POST /auth/login', { body: { username: 'cold', password: PASSWORD } });
      case 'http-refresh':
        return httpEvent('POST /auth/refresh', {
          body: { refresh_token: (await freshPair()).refresh_token },
        });
      case 'http-logout':
        return httpEvent('POST /auth/logout', { token: (await freshPair()).access_token });
      case 'http-me':
        return httpEvent('GET /auth/me', { token: socketPair.access_token });
      case 'http-jwks':
        return httpEvent('GET /.well-known/jwks.json');
      case 'http-health':
        return httpEvent('GET /health');
      case 'ws-authorizer':
        return authorizerEvent(connectionInfo(), socketPair.access_token);
      case 'ws-connect':
        return connectEvent(connectionInfo(), socketPair.claims);
      case 'ws-default':
        return messageEvent(socket, socketPair.claims, { type: 'ping', id: 1 });
      case 'ws-disconnect':
        return disconnectEvent(connectionInfo(), socketPair.claims);
      default:
        // Any other function of the manifest: its first route, authenticated; a scheduled event
        // for a scheduled one; else an empty SQS-shaped batch (a queue's worker).
        if (spec.httpRoutes?.[0])
          return httpEvent(spec.httpRoutes[0], { token: socketPair.access_token, body: {} });
        if (spec.schedule)
          return { version: '0', 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} };
        return { Records: [] };
    }
  };
}

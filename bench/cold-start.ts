import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type BuildOptions, build, type Metafile } from 'esbuild';
import { putConnection } from '../lambdas/core/connections.ts';
import { generateStoredKey, publicJwkOf } from '../lambdas/core/keys.ts';
import { localTableNames, TABLE_KEYS, tableEnvName } from '../lambdas/core/tables.ts';
import { FUNCTIONS, type FunctionSpec } from '../lambdas/functions.ts';
import { makeLoginHandler } from '../lambdas/http-login.ts';
import { makeRegisterHandler } from '../lambdas/http-register.ts';
import { runtime } from '../lambdas/runtime.ts';
import { BUNDLE_ALIASES, RUNTIME } from '../lib/handler-function.ts';
import { REPO_ROOT } from '../lib/paths.ts';
import { ensureTables, startDynalite } from '../local/dynamo.ts';
import { claimsOfToken } from '../test/kit/system.ts';
import {
  authorizerEvent,
  connectEvent,
  connectionInfo,
  disconnectEvent,
  httpEvent,
  messageEvent,
} from './events.ts';
import { fmt, median, progress, ratio, type Section, table } from './support.ts';

const run = promisify(execFile);
/** Under node_modules, so that the external `@node-rs/argon2` resolves as it does beside a Lambda bundle. */
const OUT = join(REPO_ROOT, 'node_modules', '.cache', 'jr-bench');
const CHILD = join(REPO_ROOT, 'bench', 'cold-start-child.mjs');
const PASSWORD = 'correct horse battery staple';

/** As lib/handler-function.ts writes it: esbuild's CommonJS shim needs a real `require` in ESM. */
const ESM_REQUIRE_BANNER =
  "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

/**
 * The esbuild options `HandlerFunction` (lib/handler-function.ts) gives NodejsFunction, which
 * CDK turns into `esbuild --bundle <entry> --target=node24 --platform=node --format=esm --minify
 * --sourcemap --sources-content=false --external:@node-rs/argon2 --banner:js=… --main-fields=module,main`.
 * Checked against that file's text below, so a change there is noticed here.
 */
export function stackBuildOptions(entry: string, outfile: string): BuildOptions {
  const version = /nodejs(\d+)/.exec(RUNTIME.name)?.[1] ?? '24';
  return {
    entryPoints: [entry],
    bundle: true,
    target: `node${version}`,
    platform: 'node',
    format: 'esm',
    outfile,
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    external: ['@node-rs/argon2'],
    banner: { js: ESM_REQUIRE_BANNER },
    mainFields: ['module', 'main'],
    alias: { ...BUNDLE_ALIASES },
    absWorkingDir: REPO_ROOT,
    metafile: true,
    logLevel: 'error',
  };
}

/**
 * The commit whose bundles "before" stands for: the last one whose functions carried the SDK's
 * default credential chain, the management API and Secrets Manager clients and jose's JWE.
 */
export const BEFORE_REF = 'd188216';
const EMPTY_HANDLER = 'export const handler = async () => ({ statusCode: 200 });\n';
/** The size cap test/infra/bundle.test.ts holds every bundle to. */
const BUNDLE_CAP_KB = 230;
const BEFORE_SRC = join(OUT, 'before-src');

/** The functions' sources at `BEFORE_REF` (lambdas/ only), or false where git cannot give them. */
function extractBefore(): boolean {
  try {
    rmSync(BEFORE_SRC, { recursive: true, force: true });
    mkdirSync(BEFORE_SRC, { recursive: true });
    const tar = execFileSync('git', ['archive', '--format=tar', BEFORE_REF, 'lambdas'], {
      cwd: REPO_ROOT,
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    execFileSync('tar', ['-x', '-C', BEFORE_SRC], { input: tar });
    return true;
  } catch {
    return false;
  }
}

/** The stack's options of `BEFORE_REF`: the same as today's, without the aliases. */
function beforeBuildOptions(entry: string, outfile: string): BuildOptions {
  const { alias: _alias, ...options } = stackBuildOptions(entry, outfile);
  return options;
}

function checkStackOptions(): string[] {
  const source = readFileSync(join(REPO_ROOT, 'lib', 'handler-function.ts'), 'utf8');
  const expected = [
    'format: OutputFormat.ESM',
    "mainFields: ['module', 'main']",
    'minify: true',
    'sourceMap: true',
    'sourcesContent: false',
    'bundleAwsSDK: true',
    "externalModules: ['@node-rs/argon2']",
    'banner: ESM_REQUIRE_BANNER',
  ];
  return expected.filter((e) => !source.includes(e));
}

interface Bundle {
  readonly file: string;
  readonly bytes: number;
  readonly metafile: Metafile;
}

async function bundle(spec: FunctionSpec, kind: 'ours' | 'before'): Promise<Bundle> {
  const entry = join(kind === 'ours' ? REPO_ROOT : BEFORE_SRC, 'lambdas', `${spec.name}.ts`);
  const file = join(OUT, spec.name, kind, 'index.mjs');
  const options = kind === 'ours' ? stackBuildOptions(entry, file) : beforeBuildOptions(entry, file);
  const result = await build(options);
  if (!result.metafile) throw new Error('esbuild gave no metafile');
  return { file, bytes: statSync(file).size, metafile: result.metafile };
}

/** The packages (or our own code) that weigh most in a bundle. */
function heaviest(meta: Metafile, top = 3): string {
  const output = Object.values(meta.outputs).find((o) => o.entryPoint);
  const byPackage = new Map<string, number>();
  for (const [path, input] of Object.entries(output?.inputs ?? {})) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    const name = m?.[1] ?? 'our code';
    byPackage.set(name, (byPackage.get(name) ?? 0) + input.bytesInOutput);
  }
  const total = [...byPackage.values()].reduce((a, b) => a + b, 0);
  return [...byPackage.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, bytes]) => `${name} ${Math.round((bytes / total) * 100)}%`)
    .join(', ');
}

const hasArgon2 = (meta: Metafile) =>
  Object.values(meta.outputs).some((o) => o.imports.some((i) => i.path === '@node-rs/argon2'));

/**
 * A stand-in for the AWS endpoints a cold start touches besides DynamoDB: Secrets Manager's
 * GetSecretValue (the key sets) and the `@connections` API (answers 200).
 */
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
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export interface ColdStartRow {
  readonly name: string;
  readonly oursKb: number;
  readonly beforeKb: number;
  readonly oursMs: number;
  readonly beforeMs: number;
  readonly oursWallMs: number;
  readonly beforeWallMs: number;
  readonly argon2: boolean;
  readonly heaviest: string;
  readonly outcome: string;
}

export interface ColdStartResult {
  readonly rows: readonly ColdStartRow[];
  readonly baselineMs: number;
  /** Import + one event of an empty handler (`export const handler = async () => ...`). */
  readonly emptyMs: number;
  readonly argon2ImportMs: number;
  readonly section: Section;
}

interface Child {
  importMs: number;
  handleMs: number;
  bootMs: number;
  outcome: unknown;
  wallMs: number;
}

async function child(file: string, eventFile: string, env: NodeJS.ProcessEnv): Promise<Child> {
  const started = performance.now();
  const { stdout } = await run(
    process.execPath,
    [...(file.endsWith('.mjs') ? ['--enable-source-maps'] : []), CHILD, file, eventFile],
    {
      env,
      cwd: REPO_ROOT,
      timeout: 60_000,
    },
  );
  const wallMs = performance.now() - started;
  // The audit log shares stdout; the timings are the last line.
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return { ...(JSON.parse(last) as Omit<Child, 'wallMs'>), wallMs };
}

/**
 * Measurement 4: every function of the manifest bundled as the stack bundles it and as it was at
 * `BEFORE_REF`,
 * then `runs` fresh `node` processes each that import the bundle and handle one event, against
 * dynalite and stand-ins for Secrets Manager and `@connections`.
 */
export async function measureColdStarts(runs = 5): Promise<ColdStartResult> {
  const drift = checkStackOptions();
  mkdirSync(OUT, { recursive: true });
  const dynamo = await startDynalite({});
  const tables = localTableNames('cold-');
  const key = await generateStoredKey(new Date());
  const secrets = {
    'arn:bench:signing': JSON.stringify({ keys: [key] }),
    'arn:bench:public': JSON.stringify({ keys: [publicJwkOf(key)] }),
  };
  const aws = await fakeAws(secrets);
  const baseEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: aws.url,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    DYNAMODB_ENDPOINT: dynamo.endpoint,
    TOKEN_ISSUER: 'https://bench.example',
    TOKEN_AUDIENCE: 'bench',
    ALLOWED_ORIGINS: 'http://localhost:3000',
    RATE_LIMIT_MAX: '100000',
    ...Object.fromEntries(TABLE_KEYS.map((k) => [tableEnvName(k), tables[k]])),
  };
  /** The environment lib/product-functions.ts gives the function (with `keyless`: a public key ARN added). */
  const envFor = (spec: FunctionSpec, keyless = false): NodeJS.ProcessEnv => ({
    ...baseEnv,
    AWS_LAMBDA_FUNCTION_NAME: spec.name,
    ...(spec.keys === 'sign' ? { SIGNING_KEYS_SECRET_ARN: 'arn:bench:signing' } : {}),
    ...(spec.keys === 'verify' || keyless ? { PUBLIC_KEYS_SECRET_ARN: 'arn:bench:public' } : {}),
    ...(spec.manageConnections ? { WS_MANAGEMENT_ENDPOINT: `${aws.url}/bench` } : {}),
  });
  try {
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    await ensureTables(
      new DynamoDBClient({
        endpoint: dynamo.endpoint,
        region: 'local',
        credentials: { accessKeyId: 'l', secretAccessKey: 'l' },
      }),
      tables,
    );
    // This process's own deps, built from the same environment as the functions', to seed users and
    // tokens. The SDK reads region, credentials and endpoints from process.env: dummies, local only.
    for (const k of [
      'AWS_REGION',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_ENDPOINT_URL_SECRETS_MANAGER',
    ])
      process.env[k] = baseEnv[k];
    const deps = runtime({ ...baseEnv, SIGNING_KEYS_SECRET_ARN: 'arn:bench:signing' });
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
      )) as {
        body: string;
      };
      const pair = JSON.parse(res.body) as { access_token: string; refresh_token: string };
      return { ...pair, claims: claimsOfToken(pair.access_token) };
    };
    const socket = connectionInfo();
    const socketPair = await freshPair();
    await putConnection(deps, {
      ...socketPair.claims,
      connectionId: socket.connectionId,
      ip: '203.0.113.7',
      connectedAt: Date.now(),
      rooms: [],
    });
    let registered = 0;
    const eventFor = async (spec: FunctionSpec): Promise<unknown> => {
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
          // A function added to the manifest since this bench was written: its first route, authenticated.
          if (spec.httpRoutes?.[0])
            return httpEvent(spec.httpRoutes[0], { token: socketPair.access_token, body: {} });
          return { version: '0', 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} };
      }
    };

    // Node itself, and the argon2 native module alone, for scale.
    const empty = join(OUT, 'empty.mjs');
    writeFileSync(empty, EMPTY_HANDLER);
    const argon2Probe = join(OUT, 'argon2.mjs');
    writeFileSync(
      argon2Probe,
      "import '@node-rs/argon2';\nexport const handler = async () => ({ statusCode: 200 });\n",
    );
    const eventFile = join(OUT, 'event.json');
    writeFileSync(eventFile, '{}');
    const baseline: number[] = [];
    const emptyMs: number[] = [];
    const argon2: number[] = [];
    for (let i = 0; i < runs; i++) {
      const e = await child(empty, eventFile, baseEnv);
      baseline.push(e.wallMs);
      emptyMs.push(e.importMs + e.handleMs);
      argon2.push((await child(argon2Probe, eventFile, baseEnv)).importMs);
    }
    const haveBefore = extractBefore();

    const rows: ColdStartRow[] = [];
    const crashes: string[] = [];
    for (const spec of FUNCTIONS) {
      const hasBefore = haveBefore && existsSync(join(BEFORE_SRC, 'lambdas', `${spec.name}.ts`));
      const [ours, before] = await Promise.all([
        bundle(spec, 'ours'),
        hasBefore ? bundle(spec, 'before') : Promise.resolve(undefined),
      ]);
      // First with exactly the stack's environment: a function that cannot start is the worst cold start.
      let env = envFor(spec);
      const probeFile = join(OUT, `${spec.name}-probe.json`);
      writeFileSync(probeFile, JSON.stringify(await eventFor(spec)));
      try {
        await child(ours.file, probeFile, env);
      } catch (err) {
        const stderr = String((err as { stderr?: string }).stderr ?? err);
        const message = /^\w*Error: .*$/m.exec(stderr)?.[0] ?? stderr.split('\n')[0];
        crashes.push(`${spec.name} fails its cold start with the stack's environment: ${message}`);
        if (spec.keys !== 'none') throw err;
        env = envFor(spec, true);
      }
      const samples = { ours: [] as Child[], before: [] as Child[] };
      // Alternating, so that drift on a noisy machine hits both alike.
      for (let i = 0; i < runs; i++) {
        for (const kind of ['ours', 'before'] as const) {
          const target = kind === 'ours' ? ours : before;
          if (!target) continue;
          const file = join(OUT, `${spec.name}-${kind}-${i}.json`);
          writeFileSync(file, JSON.stringify(await eventFor(spec)));
          samples[kind].push(await child(target.file, file, env));
        }
      }
      const total = (c: Child) => c.importMs + c.handleMs;
      const outcome = [...new Set([...samples.ours, ...samples.before].map((c) => String(c.outcome)))].join(
        '/',
      );
      rows.push({
        name: spec.name,
        oursKb: ours.bytes / 1024,
        beforeKb: before ? before.bytes / 1024 : Number.NaN,
        oursMs: median(samples.ours.map(total)),
        beforeMs: before ? median(samples.before.map(total)) : Number.NaN,
        oursWallMs: median(samples.ours.map((c) => c.wallMs)),
        beforeWallMs: before ? median(samples.before.map((c) => c.wallMs)) : Number.NaN,
        argon2: hasArgon2(ours.metafile),
        heaviest: heaviest(ours.metafile),
        outcome,
      });
      progress(
        `cold start: ${spec.name} ${fmt(rows.at(-1)?.oursMs ?? 0)} ms vs before ${fmt(rows.at(-1)?.beforeMs ?? 0)} ms`,
      );
    }
    return {
      rows,
      baselineMs: median(baseline),
      emptyMs: median(emptyMs),
      argon2ImportMs: median(argon2),
      section: coldStartSection(
        rows,
        median(baseline),
        median(emptyMs),
        median(argon2),
        runs,
        drift,
        crashes,
        haveBefore,
      ),
    };
  } finally {
    await aws.close();
    await dynamo.close();
  }
}

function coldStartSection(
  rows: readonly ColdStartRow[],
  baselineMs: number,
  emptyMs: number,
  argon2Ms: number,
  runs: number,
  drift: readonly string[],
  crashes: readonly string[],
  haveBefore: boolean,
): Section {
  const oversize = rows
    .filter((r) => r.oursKb > BUNDLE_CAP_KB)
    .map((r) => `${r.name} is ${fmt(r.oursKb)} KB, over the ${BUNDLE_CAP_KB} KB cap`);
  const sized = rows.filter((r) => r.oursKb > 10);
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const markdown = [
    table(
      [
        'function',
        'ours KB',
        'before KB',
        'size ratio',
        'ours ms',
        'before ms',
        'ms ratio',
        'process wall ms (ours / before)',
        'argon2',
        'heaviest in our bundle',
        'answer',
      ],
      [
        ['_empty handler_', '0.06', '', '', fmt(emptyMs), '', '', `${fmt(baselineMs)}`, '—', '', '200'],
        ...rows.map((r) => [
          r.name,
          fmt(r.oursKb),
          fmt(r.beforeKb),
          ratio(r.oursKb, r.beforeKb),
          fmt(r.oursMs),
          fmt(r.beforeMs),
          ratio(r.oursMs, r.beforeMs),
          `${fmt(r.oursWallMs)} / ${fmt(r.beforeWallMs)}`,
          r.argon2 ? 'yes' : '—',
          r.heaviest,
          r.outcome,
        ]),
      ],
    ),
    '',
    `Bundles average **${fmt(avg(sized.map((r) => r.oursKb)))} KB** (largest ${fmt(Math.max(...sized.map((r) => r.oursKb)))} KB, ` +
      `cap ${BUNDLE_CAP_KB} KB, aim 200 KB) against ${fmt(avg(sized.map((r) => r.beforeKb)))} KB before; import + first event ` +
      `**${fmt(avg(sized.map((r) => r.oursMs)))} ms** on average against ${fmt(avg(sized.map((r) => r.beforeMs)))} ms before ` +
      `and ${fmt(emptyMs)} ms for an empty handler.`,
    '',
    `"ms": median of ${runs} fresh \`node\` processes of the time to import the bundle and handle one event ` +
      '(`bench/cold-start-child.mjs`), with the environment the stack sets (`AWS_LAMBDA_FUNCTION_NAME` set, so ' +
      'dependencies are built at import as on Lambda; `--enable-source-maps` for our bundles as `NODE_OPTIONS` ' +
      "in the stack). The event does the route's real work against dynalite, and Secrets Manager " +
      '(GetSecretValue of the key sets) and `@connections` are local stand-ins over HTTP, so the network is a ' +
      'loopback. "process wall" adds Node\'s own start-up: an empty handler takes ' +
      `${fmt(baselineMs)} ms of wall time here. Importing \`@node-rs/argon2\` alone takes ${fmt(argon2Ms)} ms; ` +
      'only the functions marked "argon2" load it (the native binary sits beside their bundle on Lambda). ' +
      '"ours": the stack\'s esbuild options (ESM, minified, tree-shaken ESM builds of the SDK, source map ' +
      "beside, the aliases of lib/handler-function.ts: credentials from the environment instead of the SDK's " +
      'default chain). ' +
      `"before": the same functions at commit ${BEFORE_REF}, bundled with that commit's options (no aliases), ` +
      'when each carried the default credential chain, the `@connections` and Secrets Manager SDK clients and ' +
      "jose's JWE. The empty handler is `export const handler = async () => ({ statusCode: 200 })`. Lambda's own " +
      'init (container, runtime) is not included and is the same for both.',
    ...(haveBefore ? [] : ['', `⚠ git could not give the sources of ${BEFORE_REF}: no "before" figures.`]),
    ...(drift.length > 0
      ? ['', `⚠ lib/handler-function.ts no longer shows ${drift.join(', ')}: update bench/cold-start.ts.`]
      : []),
    ...(crashes.length > 0
      ? [
          '',
          '**Functions that cannot start with the environment the stack gives them** (timed above with ' +
            '`PUBLIC_KEYS_SECRET_ARN` added, which they never read):',
          '',
          ...crashes.map((c) => `- ❌ ${c}`),
        ]
      : []),
  ].join('\n');
  return { title: 'Cold start per Lambda bundle', markdown, failures: [...crashes, ...oversize] };
}
